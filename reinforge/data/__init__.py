"""Dataset readers and validators: RFT rows, preference data, splits."""
