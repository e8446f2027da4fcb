"""The reference codec (an independent construct spec of the wire format), the sniffer that
decodes captures with it, and the extraction of published test vectors."""
