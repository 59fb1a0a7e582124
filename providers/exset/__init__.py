"""EXSET SMS (seed 002): batch, each request a TQUEUE entry."""
