"""Wrong answer to ch4 q4: the asymptotic rule taken literally — every bit divides the loss increase by exactly
4 — which is off by 125% at 2 bits and still by 15% at 4 bits."""


def per_bit_factor(bits):
    return 4.0
