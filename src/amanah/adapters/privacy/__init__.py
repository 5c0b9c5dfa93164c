"""Privacy adapters: agreements, detectors, the inbound screen, the egress guard, secure links, the ledger."""
