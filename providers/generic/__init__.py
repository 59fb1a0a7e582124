"""The Generic provider: any CA / OTT platform, through the Web API (seed 004)."""
