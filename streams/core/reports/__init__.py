"""Revenue and occupancy reports: what each stay and room contributes to a business day
(`shares`), the periods and their schedule (`periods`), the figures and their rounding
(`money`, `figures`)."""
