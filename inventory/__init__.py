"""Hosts: SSH and local transports, probing, remote job supervision. Never imports scheduler or lepton_tui."""
