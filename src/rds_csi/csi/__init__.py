"""The gRPC layer: CSI servicers, request validation, and the one mapping from domain errors to status codes."""
