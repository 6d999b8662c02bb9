"""The HTTP gateway: systems that speak HTTP, not NATS, publish through it as their organisation.

``tokens`` issues and checks the organisations' bearer tokens; ``binding`` reads the CloudEvents
HTTP binding (structured, binary and batch mode); ``app`` answers ``POST /v1/events`` with the
hub's own replies, publishing over each organisation's own NATS identity.
"""
