"""CSI v1 wire types and gRPC stubs, generated from csi.proto by scripts/gen-proto (do not edit by hand)."""
