"""The benchmarks' models: one shape of row, stored plain, with our fields, and with Fernet's."""
