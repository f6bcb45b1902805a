// placeholder until the quantizer lands
