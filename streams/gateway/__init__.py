"""The gateway (`hotelhub gateway`, port 3400): the design's Event Router.

It takes events in over REST (`publishing`), and hands them out by their targets over
WebSocket (`websocket`, one Kafka reader per connection, resumable by cursor) and webhooks
(`webhooks`, one consumer group shared by every gateway process). It imports the core, the
wire and the runners, never the Faust worker: it is a process of its own.
"""
