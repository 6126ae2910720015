"""Golden outputs: seeded cases run through the real runtime and compared with recorded sets by perceptual hash."""
