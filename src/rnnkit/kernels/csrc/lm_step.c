/* One generation step of a recurrent language model, and the draw of the next token, in one call.
 *
 * Built at first use by rnnkit/kernels/native.py (cc -O3 -march=native -fopenmp) and called through ctypes;
 * the arithmetic is that of the cells' own steps (rnnkit.cells) and of rnnkit.decode.sample.next_token. Per
 * layer l, x = the layer below's new h (layer 1: the token, whose W_x x + b_x is a row of the table T), h its
 * own state, gate rows in the cells' order, b_x and b_h the input and hidden biases:
 *
 *   LSTM (i, f, g, o):  a = W_x x + b_x + W_h h + b_h;  with peepholes p (3, H): a_i += p_i c, a_f += p_f c
 *                       c' = s(a_f) c + s(a_i) tanh(a_g);  (peepholes: a_o += p_o c');  h' = s(a_o) tanh(c')
 *   GRU, reset after (r, z, g; torch's form):  r = s(x_r + h_r), z = s(x_z + h_z), g = tanh(x_g + r h_g),
 *                       x_* = W_x* x + b_x*, h_* = W_h* h + b_h*;  h' = g + z (h - g)
 *   GRU, reset before (Cho et al.):  r, z as above;  g = tanh(x_g + W_hg (r h) + b_hg);  h' = g + z (h - g)
 *   Elman:              h' = phi(W_x x + b_x + W_h h + b_h), phi tanh, relu, sigmoid or the identity
 *
 * then logits = W_y h'_L + b_y (V), and the draw: greedy (temperature 0) the first largest logit; else
 * p = softmax(logits / temperature) and the first index whose cumulative sum exceeds u * sum(p), u in [0, 1)
 * from the caller.
 *
 * Weights are row-major as torch keeps them: float32, bf16 (the top half of a float32: products summed in
 * float32; with AVX-512 BF16, against the input rounded to bf16, as torch's bf16 product does), or int8 with
 * one scale per row (w_n = s_n q_n; with AVX-512 VNNI against the input quantized to int8 too, one scale per
 * input vector and step, max|x| / 127, summed in int32).
 *
 * A layer's work is split by hidden unit: a thread computes its units' gate rows and updates their state, so
 * a layer needs one barrier (two for Cho's GRU, whose candidate needs every unit's reset gate first); the old
 * state is copied before the split, so no thread reads a state another one is writing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { FP32 = 0, BF16 = 1, INT8 = 2 };
enum { LSTM = 0, GRU_AFTER = 1, GRU_BEFORE = 2, ELMAN = 3 };
enum { TANH = 0, RELU = 1, SIGMOID = 2, IDENTITY = 3 };
#define UNITS 16  /* hidden units per piece of work */

typedef struct {
    int32_t layers, hidden, vocab, precision, threads;
    const int32_t *kinds;        /* per layer: LSTM, GRU_AFTER, GRU_BEFORE or ELMAN */
    const int32_t *activations;  /* per layer: Elman's phi */
    const float *table;          /* (V, G_1): layer 1's W_x x + b_x for every token */
    const void *const *wx;       /* per layer (G, H) input weights; layer 1: NULL (the table) */
    const void *const *wh;       /* per layer (G, H) */
    const float *const *sx;      /* per layer (G) row scales of wx when int8, else NULL */
    const float *const *sh;      /* per layer (G) row scales of wh when int8, else NULL */
    const int32_t *const *qx;    /* per layer (G) row sums of int8 wx, else NULL */
    const int32_t *const *qh;    /* per layer (G) row sums of int8 wh, else NULL */
    const float *const *bx;      /* per layer (G) or NULL; layer 1: NULL (in the table) */
    const float *const *bh;      /* per layer (G) or NULL */
    const float *const *peepholes;  /* per layer (3, H) or NULL */
    float *const *h;             /* per layer (H): the state, read and written */
    float *const *c;             /* per layer (H) for an LSTM, else NULL */
    float *scratch;              /* (8H + 4) */
    const float *head_weight;    /* (V, H) */
    const float *head_bias;      /* (V) */
    float *logits;               /* (V), written */
    float *cdf;                  /* scratch (V) */
    void *ranked;                /* scratch (V) of (float, int32) pairs, for top-k and top-p */
} lm_step_t;

/* where the scratch keeps what a layer's threads share: the old state, bf16 copies, Cho's r h, r and z */
#define OLD_H(m) ((m)->scratch)
#define BF16_X(m) ((uint16_t *)((m)->scratch + (m)->hidden))
#define BF16_H(m) ((uint16_t *)((m)->scratch + (m)->hidden) + (m)->hidden)
#define RH(m) ((m)->scratch + 2 * (m)->hidden)
#define BF16_RH(m) ((uint16_t *)((m)->scratch + 3 * (m)->hidden))
#define GATE_R(m) ((m)->scratch + 4 * (m)->hidden)
#define GATE_Z(m) ((m)->scratch + 5 * (m)->hidden)
#define Q_X(m) ((uint8_t *)((m)->scratch + 6 * (m)->hidden))
#define Q_H(m) (Q_X(m) + (m)->hidden)
#define Q_RH(m) (Q_X(m) + 2 * (m)->hidden)
#define Q_SCALES(m) ((m)->scratch + 8 * (m)->hidden)  /* of x, h and r h */

/* int8 weights against int8 inputs where the CPU has AVX-512 VNNI (64 products an instruction); elsewhere
 * against the float32 input */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define INT8_INPUTS 1
#else
#define INT8_INPUTS 0
#endif

/* one input vector of a product, in each form a precision reads: float32, bf16, int8 (stored + 128) */
typedef struct {
    const float *f;
    const uint16_t *bf;
    const uint8_t *q;
    float scale;
} input_t;

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float from_bf16(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float32 -> bf16, rounded to nearest even */
static inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

/* out[g] = row j + g H of w (K columns) . x, for g < n: one row per gate of unit j; scales and sums (the int8
 * rows' scales and sums of q) start at gate 0 of w */
static inline __attribute__((always_inline)) void rows(const lm_step_t *m, const void *w, const float *scales,
                                                       const int32_t *sums, int j, int K, int n, const input_t *in,
                                                       float *out) {
    size_t stride = (size_t)m->hidden * K;
    const float *restrict x = in->f;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (m->precision == FP32) {
        const float *restrict w0 = (const float *)w + (size_t)j * K;
        for (int k = 0; k < K; k++)
            for (int g = 0; g < n; g++) acc[g] += w0[g * stride + k] * x[k];
    } else if (m->precision == BF16) {
        const uint16_t *restrict w0 = (const uint16_t *)w + (size_t)j * K;
        int k = 0;
#ifdef __AVX512BF16__
        const uint16_t *xb = in->bf;
        __m512 v[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (; k + 32 <= K; k += 32) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + k);
            for (int g = 0; g < n; g++)
                v[g] = _mm512_dpbf16_ps(v[g], (__m512bh)_mm512_loadu_si512(w0 + g * stride + k), xv);
        }
        for (int g = 0; g < n; g++) acc[g] = _mm512_reduce_add_ps(v[g]);
        for (; k < K; k++)
            for (int g = 0; g < n; g++) acc[g] += from_bf16(w0[g * stride + k]) * from_bf16(xb[k]);
#else
        for (; k < K; k++)
            for (int g = 0; g < n; g++) acc[g] += from_bf16(w0[g * stride + k]) * x[k];
#endif
    } else {
        const int8_t *restrict w0 = (const int8_t *)w + (size_t)j * K;
#if INT8_INPUTS
        const uint8_t *xq = in->q;
        __m512i v[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        int k = 0;
        for (; k + 64 <= K; k += 64) {
            __m512i xv = _mm512_loadu_si512(xq + k);
            for (int g = 0; g < n; g++)
                v[g] = _mm512_dpbusd_epi32(v[g], xv, _mm512_loadu_si512(w0 + g * stride + k));
        }
        for (int g = 0; g < n; g++) {
            int32_t dot = _mm512_reduce_add_epi32(v[g]);
            for (int kk = k; kk < K; kk++) dot += (int32_t)xq[kk] * w0[g * stride + kk];
            /* sum (q_x + 128) q_w = sum q_x q_w + 128 sum q_w */
            acc[g] = (float)(dot - 128 * sums[j + g * m->hidden]) * in->scale;
        }
#else
        (void)sums;
        for (int k = 0; k < K; k++)
            for (int g = 0; g < n; g++) acc[g] += (float)w0[g * stride + k] * x[k];
#endif
        for (int g = 0; g < n; g++) acc[g] *= scales[j + g * m->hidden];
    }
    for (int g = 0; g < n; g++) out[g] = acc[g];
}

/* the rows of gate g0 onwards of a (G, H) weight in the step's precision */
static inline const void *from_gate(const lm_step_t *m, const void *w, int g0) {
    size_t bytes = m->precision == FP32 ? 4 : m->precision == BF16 ? 2 : 1;
    return (const char *)w + (size_t)g0 * m->hidden * m->hidden * bytes;
}

/* out[g] = W_x x + b_x for gate g (g0 <= g < g0 + n) of unit j: the table's row for layer 1 */
static inline __attribute__((always_inline)) void input_part(const lm_step_t *m, int layer, const float *x,
                                                             int64_t token, int j, int g0, int n, float *out) {
    int H = m->hidden;
    if (layer == 0) {
        int G = m->kinds[0] == LSTM ? 4 * H : m->kinds[0] == ELMAN ? H : 3 * H;
        for (int g = 0; g < n; g++) out[g] = m->table[(size_t)token * G + (g0 + g) * H + j];
        return;
    }
    const float *bx = m->bx[layer], *sx = m->sx[layer];
    const int32_t *qx = m->qx[layer];
    input_t in = {x, BF16_X(m), Q_X(m), Q_SCALES(m)[0]};
    rows(m, from_gate(m, m->wx[layer], g0), sx ? sx + g0 * H : NULL, qx ? qx + g0 * H : NULL, j, H, n, &in, out);
    if (bx)
        for (int g = 0; g < n; g++) out[g] += bx[(g0 + g) * H + j];
}

/* out[g] = W_h v + b_h for gate g (g0 <= g < g0 + n) of unit j, v the old state (or Cho's r h) */
static inline __attribute__((always_inline)) void hidden_part(const lm_step_t *m, int layer, const input_t *v,
                                                              int j, int g0, int n, float *out) {
    int H = m->hidden;
    const float *bh = m->bh[layer], *sh = m->sh[layer];
    const int32_t *qh = m->qh[layer];
    rows(m, from_gate(m, m->wh[layer], g0), sh ? sh + g0 * H : NULL, qh ? qh + g0 * H : NULL, j, H, n, v, out);
    if (bh)
        for (int g = 0; g < n; g++) out[g] += bh[(g0 + g) * H + j];
}

static inline float activation(int phi, float a) {
    switch (phi) {
        case RELU: return a > 0.0f ? a : 0.0f;
        case SIGMOID: return sigmoid(a);
        case IDENTITY: return a;
        default: return tanhf(a);
    }
}

/* the units [lo, hi) of one layer (for Cho's GRU, phase 1: r and z, phase 2: the candidate and h) */
static void units(const lm_step_t *m, int layer, int64_t token, int phase, int lo, int hi) {
    int H = m->hidden, kind = m->kinds[layer];
    const float *x = layer > 0 ? m->h[layer - 1] : NULL, *old = OLD_H(m);
    input_t in_h = {old, BF16_H(m), Q_H(m), Q_SCALES(m)[1]}, in_rh = {RH(m), BF16_RH(m), Q_RH(m), Q_SCALES(m)[2]};
    float *h = m->h[layer];
    for (int j = lo; j < hi; j++) {
        float ax[4], ah[4];
        if (kind == LSTM) {
            input_part(m, layer, x, token, j, 0, 4, ax);
            hidden_part(m, layer, &in_h, j, 0, 4, ah);
            float *c = m->c[layer], c_prev = c[j];
            const float *p = m->peepholes[layer];
            float a_i = ax[0] + ah[0] + (p ? p[j] * c_prev : 0.0f);
            float a_f = ax[1] + ah[1] + (p ? p[j + H] * c_prev : 0.0f);
            float c_new = sigmoid(a_f) * c_prev + sigmoid(a_i) * tanhf(ax[2] + ah[2]);
            float a_o = ax[3] + ah[3] + (p ? p[j + 2 * H] * c_new : 0.0f);
            c[j] = c_new;
            h[j] = sigmoid(a_o) * tanhf(c_new);
        } else if (kind == GRU_AFTER) {
            input_part(m, layer, x, token, j, 0, 3, ax);
            hidden_part(m, layer, &in_h, j, 0, 3, ah);
            float r = sigmoid(ax[0] + ah[0]), z = sigmoid(ax[1] + ah[1]);
            float g = tanhf(ax[2] + r * ah[2]);
            h[j] = g + z * (old[j] - g);
        } else if (kind == GRU_BEFORE && phase == 1) {
            input_part(m, layer, x, token, j, 0, 2, ax);
            hidden_part(m, layer, &in_h, j, 0, 2, ah);
            float r = sigmoid(ax[0] + ah[0]);
            GATE_R(m)[j] = r;
            GATE_Z(m)[j] = sigmoid(ax[1] + ah[1]);
            RH(m)[j] = r * old[j];
        } else if (kind == GRU_BEFORE) {
            input_part(m, layer, x, token, j, 2, 1, ax);
            hidden_part(m, layer, &in_rh, j, 2, 1, ah);
            float g = tanhf(ax[0] + ah[0]);
            h[j] = g + GATE_Z(m)[j] * (old[j] - g);
        } else {
            input_part(m, layer, x, token, j, 0, 1, ax);
            hidden_part(m, layer, &in_h, j, 0, 1, ah);
            h[j] = activation(m->activations[layer], ax[0] + ah[0]);
        }
    }
}

static void round_to_bf16(const float *v, uint16_t *out, int n) {
    for (int k = 0; k < n; k++) out[k] = to_bf16(v[k]);
}

/* v (n) as int8 with one scale, max|v| / 127, stored + 128 (the unsigned operand of VNNI's products) */
static void quantize(const float *v, uint8_t *out, float *scale, int n) {
    float top = 0.0f;
    for (int k = 0; k < n; k++) top = fabsf(v[k]) > top ? fabsf(v[k]) : top;
    float s = top > 0.0f ? top / 127.0f : 1.0f;
    for (int k = 0; k < n; k++) {
        float q = nearbyintf(v[k] / s);
        q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
        out[k] = (uint8_t)((int)q + 128);
    }
    *scale = s;
}

/* the forms of a layer's inputs its precision reads: bf16 copies, or int8 ones */
static void prepare(const lm_step_t *m, const float *v, uint16_t *bf, uint8_t *q, float *scale, int n) {
    if (m->precision == BF16) round_to_bf16(v, bf, n);
    if (m->precision == INT8 && INT8_INPUTS) quantize(v, q, scale, n);
}

/* The layers and the output layer for one token: the state moves one step, logits are written. */
static void step(const lm_step_t *m, int64_t token) {
    int H = m->hidden, V = m->vocab;
    #pragma omp parallel num_threads(m->threads)
    {
        for (int layer = 0; layer < m->layers; layer++) {
            #pragma omp single
            {
                memcpy(OLD_H(m), m->h[layer], (size_t)H * sizeof(float));
                if (layer > 0) prepare(m, m->h[layer - 1], BF16_X(m), Q_X(m), &Q_SCALES(m)[0], H);
                prepare(m, OLD_H(m), BF16_H(m), Q_H(m), &Q_SCALES(m)[1], H);
            }  /* a barrier: every thread sees the copies */
            #pragma omp for schedule(static)
            for (int lo = 0; lo < H; lo += UNITS)
                units(m, layer, token, 1, lo, lo + UNITS < H ? lo + UNITS : H);
            if (m->kinds[layer] == GRU_BEFORE) {  /* the candidate needs every unit's r h */
                #pragma omp single
                prepare(m, RH(m), BF16_RH(m), Q_RH(m), &Q_SCALES(m)[2], H);
                #pragma omp for schedule(static)
                for (int lo = 0; lo < H; lo += UNITS)
                    units(m, layer, token, 2, lo, lo + UNITS < H ? lo + UNITS : H);
            }
        }
        const float *h = m->h[m->layers - 1];
        #pragma omp for schedule(static)
        for (int v = 0; v < V; v++) {
            const float *restrict w = m->head_weight + (size_t)v * H;
            float s = 0.0f;
            for (int k = 0; k < H; k++) s += w[k] * h[k];
            m->logits[v] = s + m->head_bias[v];
        }
    }
}

typedef struct {
    float value;
    int32_t index;
} ranked_t;

/* larger value first; equal values by index, so the order is fixed */
static int by_value_descending(const void *a, const void *b) {
    const ranked_t *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->index - y->index;
}

/* exp(z - max z) into e, and their sum; -inf stays 0 */
static float exponentials(const float *z, float *e, int V) {
    float top = -INFINITY, sum = 0.0f;
    for (int v = 0; v < V; v++)
        if (z[v] > top) top = z[v];
    for (int v = 0; v < V; v++) {
        e[v] = z[v] == -INFINITY ? 0.0f : expf(z[v] - top);
        sum += e[v];
    }
    return sum;
}

/* next_token's draw from one row of logits (V): z = logits / temperature; top_k (0: off) keeps the logits not
 * below the k-th largest; top_p (>= 1: off) keeps, in order of decreasing z, each token whose predecessors'
 * probability is still below top_p; then the inverse-CDF draw over what is kept, in token order. z (V) and
 * ranked (V) are scratch. */
int64_t rk_draw(const float *logits, float *z, ranked_t *ranked, int32_t V, float temperature, float u,
                int32_t top_k, float top_p) {
    if (temperature == 0.0f) {
        int64_t best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    for (int v = 0; v < V; v++) z[v] = logits[v] / temperature;
    int filter_k = top_k > 0 && top_k < V, filter_p = top_p < 1.0f;
    if (filter_k || filter_p) {
        for (int v = 0; v < V; v++) ranked[v] = (ranked_t){z[v], v};
        qsort(ranked, (size_t)V, sizeof *ranked, by_value_descending);
    }
    if (filter_k) {
        float kth = ranked[top_k - 1].value;
        for (int v = 0; v < V; v++)
            if (z[v] < kth) z[v] = -INFINITY;
        for (int r = 0; r < V; r++)
            if (ranked[r].value < kth) ranked[r].value = -INFINITY;
    }
    if (filter_p) {  /* the softmax of the kept logits, in ranked order (each value replaced by its exp) */
        float top = ranked[0].value, sum = 0.0f;
        for (int r = 0; r < V; r++) {
            ranked[r].value = ranked[r].value == -INFINITY ? 0.0f : expf(ranked[r].value - top);
            sum += ranked[r].value;
        }
        double running = 0.0;
        for (int r = 0; r < V; r++) {
            float p = ranked[r].value / sum;
            running += p;
            if ((float)running - p >= top_p) z[ranked[r].index] = -INFINITY;
        }
    }
    float *cdf = z;  /* overwritten in place: exp, then the running sum */
    float inv = 1.0f / exponentials(z, cdf, V);
    double running = 0.0;  /* torch's CPU cumsum sums float32 in double */
    for (int v = 0; v < V; v++) {
        running += cdf[v] * inv;
        cdf[v] = (float)running;
    }
    float target = u * cdf[V - 1];
    int64_t index = 0;  /* how many cumulative sums are <= target (searchsorted, right) */
    while (index < V && cdf[index] <= target) index++;
    return index < V ? index : V - 1;
}

/* step from token, then draw the next one */
int64_t rk_lm_sample(const lm_step_t *m, int64_t token, float temperature, float u, int32_t top_k, float top_p) {
    step(m, token);
    return rk_draw(m->logits, m->cdf, (ranked_t *)m->ranked, m->vocab, temperature, u, top_k, top_p);
}

/* step from token; the logits are in m->logits */
void rk_lm_step(const lm_step_t *m, int64_t token) { step(m, token); }
