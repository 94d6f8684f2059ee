"""The benchmark pipeline: matrix → launch → drive → collect → model → plot."""
