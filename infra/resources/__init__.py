"""What the stack keeps standing: encrypted storage, the network, least-privilege policies, clean-up, batch prediction."""
