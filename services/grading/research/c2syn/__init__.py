"""C2-SYN: synthetic preferences for timely course-correction."""
