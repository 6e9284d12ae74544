"""Ground truth: the label protocol, manifests, labelling at scale, synthetic images."""
