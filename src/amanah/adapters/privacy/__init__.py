"""Privacy adapters: sensitive-data detectors, the inbound redactor and (later) the egress guard."""
