"""Wrong answer to ch3 q4: XORs the int64 value directly, so flipping bit 7 of 5 gives 133 instead of −123 (the
byte is not read back as two's complement); the lower bits come out right. And the largest move is taken
to be 127 steps (the largest code) rather than 128."""


def flip_bit(q, bit):
    return q ^ (1 << bit)


largest_step = 127
