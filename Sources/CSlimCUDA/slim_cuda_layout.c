/*
 * Host repack of a slim-packed linear from the file layout (docs/FORMAT.md) into the GPU layout
 * (include/slim_cuda_layout.h). Plain C so that it runs in slim-quant itself, without CUDA, and
 * is tested there against the scalar reference decoder.
 */
#include "slim_cuda_layout.h"

#include <string.h>

/* Reads `width` (1…8) bits at bit `offset` of a little-endian bit stream. */
static uint32_t read_bits(const uint8_t *bytes, int64_t offset, int32_t width) {
    int64_t byte = offset >> 3;
    int32_t shift = (int32_t)(offset & 7);
    uint32_t v = (uint32_t)bytes[byte] >> shift;
    if (shift + width > 8) v |= (uint32_t)bytes[byte + 1] << (8 - shift);
    return v & ((1u << width) - 1u);
}

static int valid_geometry(int32_t rows, int32_t columns, int32_t group_size, const uint8_t *bits) {
    if (rows < 0 || columns < 1 || group_size < 1 || bits == NULL) return 0;
    int32_t k = slim_layout_groups(columns, group_size);
    for (int32_t g = 0; g < k; g++) {
        if (bits[g] < 1 || bits[g] > SLIM_LAYOUT_MAX_BITS) return 0;
    }
    return 1;
}

int64_t slim_layout_word_count(int32_t rows, int32_t columns, int32_t group_size, const uint8_t *bits) {
    if (!valid_geometry(rows, columns, group_size, bits)) return -1;
    int64_t sum = 0;
    int32_t k = slim_layout_groups(columns, group_size);
    for (int32_t g = 0; g < k; g++) sum += bits[g];
    return (int64_t)slim_layout_row_tiles(rows) * 32 * slim_layout_slabs(group_size) * sum;
}

int64_t slim_layout_param_count(int32_t rows, int32_t columns, int32_t group_size) {
    if (rows < 0 || columns < 1 || group_size < 1) return -1;
    return (int64_t)slim_layout_row_tiles(rows) * slim_layout_groups(columns, group_size) * SLIM_LAYOUT_TILE_ROWS;
}

int slim_layout_pack(const slim_layout_source *src, uint32_t *words, uint32_t *params) {
    const int32_t rows = src->rows, columns = src->columns, gs = src->group_size;
    if (!valid_geometry(rows, columns, gs, src->bits)) return -1;
    const uint8_t *bits = src->bits;
    const int32_t k = slim_layout_groups(columns, gs), slabs = slim_layout_slabs(gs);
    const int32_t tiles = slim_layout_row_tiles(rows);

    /* File-layout offsets (PackedGeometry): code bits, zero bits, mean index per group. */
    int64_t code_bits = 0, zero_bits = 0, ones = 0, bits_sum = 0;
    for (int32_t g = 0; g < k; g++) {
        int32_t width = (g + 1) * gs <= columns ? gs : columns - g * gs;
        code_bits += (int64_t)width * bits[g];
        if (bits[g] >= 2) zero_bits += bits[g]; else ones++;
        bits_sum += bits[g];
    }
    const int64_t bw = (code_bits + 7) / 8, bz = (zero_bits + 7) / 8;
    const int64_t tile_words = 32 * (int64_t)slabs * bits_sum;

    memset(words, 0, sizeof(uint32_t) * (size_t)(tiles * tile_words));
    memset(params, 0, sizeof(uint32_t) * (size_t)((int64_t)tiles * k * SLIM_LAYOUT_TILE_ROWS));

    for (int32_t r = 0; r < rows; r++) {
        const int32_t tile = r / SLIM_LAYOUT_TILE_ROWS, rr = r % SLIM_LAYOUT_TILE_ROWS;
        const uint8_t *qw = src->qweight + (int64_t)r * bw;
        const uint8_t *qz = src->qzeros + (int64_t)r * bz;
        int64_t code_off = 0, zero_off = 0, group_off = 0, mean = 0;
        for (int32_t g = 0; g < k; g++) {
            const int32_t b = bits[g];
            const int32_t width = (g + 1) * gs <= columns ? gs : columns - g * gs;
            /* Params: [tile][g][rr mod 8][rr / 8]. */
            uint32_t scale = src->scales[(int64_t)r * k + g], param;
            if (b == 1) {
                param = scale | (uint32_t)src->means[(int64_t)r * ones + mean] << 16;
                mean++;
            } else {
                param = scale | read_bits(qz, zero_off, b) << 16;
                zero_off += b;
            }
            params[((int64_t)tile * k + g) * SLIM_LAYOUT_TILE_ROWS + (rr % 8) * 2 + rr / 8] = param;

            /* Codes: the inverse of the A-fragment map. */
            uint32_t *group_words = words + tile * tile_words + group_off;
            const int32_t planes = slim_layout_plane_count(b);
            for (int32_t j = 0; j < width; j++) {
                const uint32_t q = read_bits(qw, code_off + (int64_t)j * b, b);
                const int32_t slab = j / SLIM_LAYOUT_SLAB, c64 = j % SLIM_LAYOUT_SLAB;
                const int32_t kt = c64 / SLIM_LAYOUT_KTILE, c16 = c64 % SLIM_LAYOUT_KTILE;
                const int32_t reg = rr / 8 + 2 * (c16 / 8);      /* A register 0…3 */
                const int32_t lane = (rr % 8) * 4 + (c16 % 8) / 2, e = c16 % 2;
                const int32_t pair = kt * 4 + reg;
                for (int32_t p = 0; p < planes; p++) {
                    const int32_t pw = slim_layout_plane_width(b, p), po = slim_layout_plane_offset(b, p);
                    const uint32_t v = (q >> po) & ((1u << pw) - 1u);
                    const int32_t word = slim_layout_pair_word(pw, po, pair);
                    const int32_t shift = slim_layout_pair_shift(pw, pair) + 16 * e;
                    group_words[((int64_t)slab * b + word) * 32 + lane] |= v << shift;
                }
            }
            code_off += (int64_t)width * b;
            group_off += 32 * (int64_t)slabs * b;
        }
    }
    return 0;
}
