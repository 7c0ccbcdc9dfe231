"""The HTTP ingress EDC connectors call: provisioner requests and event callbacks, published to NATS."""
