"""Cheap image features that predict the vectorization label."""
