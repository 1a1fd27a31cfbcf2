"""Contract-mode settlement: sweeps of deposit addresses to the merchant's treasury, sent from the
relayer's KMS key and carried to finality (relayer.py), with their records (records.py)."""
