"""Chain access for the deposit scanner. Never imported by the API: the Tron reader needs tronpy,
which lives in the scanner's layer only."""
