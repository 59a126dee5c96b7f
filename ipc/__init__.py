"""The wire: message schema, event bus, control socket (server and client), shared-memory candle rings."""
