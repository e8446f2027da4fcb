"""The AMI link layer (docs/protocol.md): frame codec, DATA and join payloads."""
