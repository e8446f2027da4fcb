"""Utility back office: the command signer (HSM, operator policy) and provisioning."""
