/* One generation step of an LSTM language model, and the draw of the next token, in one call.
 *
 * Built at first use by rnnkit/kernels/native.py (cc -O3 -march=native -fopenmp) and called through ctypes;
 * the arithmetic is that of rnnkit.layers.stepping.Stepper and rnnkit.decode.sample.next_token:
 *
 *   layer 1:      a = T[id] + W_h h_{t-1}              T (V, 4H): every token's W_x x + b_ih + b_hh
 *   layer l > 1:  a = [x, h_{t-1}] [W_x; W_h]^T + b    x: the layer below's new h
 *   every layer:  gate rows i, f, g, o;  with peepholes p (3, H): a^i += p_i c_{t-1}, a^f += p_f c_{t-1}
 *                 c_t = s(a^f) c_{t-1} + s(a^i) tanh(a^g);  (peepholes: a^o += p_o c_t)
 *                 h_t = s(a^o) tanh(c_t)
 *   then          logits = W_y h_t + b_y   (V)
 *   and the draw  greedy (temperature 0): the first largest logit; else p = softmax(logits / temperature),
 *                 the first index whose cumulative sum exceeds u * sum(p), u in [0, 1) from the caller.
 *
 * Weights are row-major as torch keeps them: float32, bf16 (the top half of a float32: products summed in
 * float32; with AVX-512 BF16, against the layer input rounded to bf16, as torch's bf16 product does), or int8
 * with one scale per row (w_n = s_n q_n). The work of a layer is split by hidden unit:
 * a thread computes the four gate rows of its units and updates those units' c and h, so a layer needs one
 * barrier; its input [x, h_{t-1}] is copied once before the split, so no thread reads a state another
 * thread is writing.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { FP32 = 0, BF16 = 1, INT8 = 2 };

typedef struct {
    int32_t layers, hidden, vocab, precision, threads;
    const float *table;        /* (V, 4H) */
    const void *const *weights;  /* per layer (4H, K): K = H for layer 1, 2H above it */
    const float *const *scales;  /* per layer (4H) row scales when int8, else NULL */
    const float *const *biases;  /* per layer (4H), NULL for layer 1 (its bias is in the table) */
    const float *const *peepholes;  /* per layer (3, H) or NULL */
    float *const *h;           /* per layer (H): the state, read and written */
    float *const *c;           /* per layer (H) */
    float *input;              /* scratch (3H): the layer's [x, h_{t-1}], then (bf16) the same rounded to bf16 */
    const float *head_weight;  /* (V, H) */
    const float *head_bias;    /* (V) */
    float *logits;             /* (V), written */
    float *cdf;                /* scratch (V) */
} lm_step_t;

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float from_bf16(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#ifdef __AVX512BF16__
#include <immintrin.h>

/* four_rows for bf16 weights on CPUs with AVX-512 BF16: against the layer input rounded to bf16 (m->input + 2H,
 * written once per layer), 32 products a dot-product instruction, summed in float32 */
static void bf16_rows(const lm_step_t *m, int layer, int j, int K, float out[4]) {
    int H = m->hidden;
    const uint16_t *x = (const uint16_t *)(m->input + 2 * H);
    const uint16_t *w = (const uint16_t *)m->weights[layer] + (size_t)j * K;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512bh xv = (__m512bh)_mm512_loadu_si512(x + k);
        for (int g = 0; g < 4; g++)
            acc[g] = _mm512_dpbf16_ps(acc[g], (__m512bh)_mm512_loadu_si512(w + (size_t)g * H * K + k), xv);
    }
    for (int g = 0; g < 4; g++) {
        float s = _mm512_reduce_add_ps(acc[g]);
        for (int kk = k; kk < K; kk++) s += from_bf16(w[(size_t)g * H * K + kk]) * from_bf16(x[kk]);
        out[g] = s;
    }
}
#endif

/* float32 -> bf16, rounded to nearest even */
static inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/* out[r] = row r of w (in K) . x, for the four rows j, j + H, j + 2H, j + 3H (one gate each) */
static void four_rows(const lm_step_t *m, int layer, int j, int K, const float *restrict x, float out[4]) {
    int H = m->hidden;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    if (m->precision == FP32) {
        const float *w = (const float *)m->weights[layer];
        const float *restrict w0 = w + (size_t)j * K, *restrict w1 = w0 + (size_t)H * K;
        const float *restrict w2 = w1 + (size_t)H * K, *restrict w3 = w2 + (size_t)H * K;
        for (int k = 0; k < K; k++) {
            s0 += w0[k] * x[k]; s1 += w1[k] * x[k]; s2 += w2[k] * x[k]; s3 += w3[k] * x[k];
        }
    } else if (m->precision == BF16) {
#ifdef __AVX512BF16__
        bf16_rows(m, layer, j, K, out);
        return;
#endif
        const uint16_t *w = (const uint16_t *)m->weights[layer];
        const uint16_t *restrict w0 = w + (size_t)j * K, *restrict w1 = w0 + (size_t)H * K;
        const uint16_t *restrict w2 = w1 + (size_t)H * K, *restrict w3 = w2 + (size_t)H * K;
        for (int k = 0; k < K; k++) {
            s0 += from_bf16(w0[k]) * x[k]; s1 += from_bf16(w1[k]) * x[k];
            s2 += from_bf16(w2[k]) * x[k]; s3 += from_bf16(w3[k]) * x[k];
        }
    } else {
        const int8_t *w = (const int8_t *)m->weights[layer];
        const int8_t *restrict w0 = w + (size_t)j * K, *restrict w1 = w0 + (size_t)H * K;
        const int8_t *restrict w2 = w1 + (size_t)H * K, *restrict w3 = w2 + (size_t)H * K;
        for (int k = 0; k < K; k++) {
            s0 += (float)w0[k] * x[k]; s1 += (float)w1[k] * x[k];
            s2 += (float)w2[k] * x[k]; s3 += (float)w3[k] * x[k];
        }
        const float *s = m->scales[layer];
        s0 *= s[j]; s1 *= s[j + H]; s2 *= s[j + 2 * H]; s3 *= s[j + 3 * H];
    }
    out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
}

/* the units [lo, hi) of one layer: their gates, then their c and h */
static void layer_units(const lm_step_t *m, int layer, int64_t token, int lo, int hi) {
    int H = m->hidden, K = layer == 0 ? H : 2 * H;
    const float *add = layer == 0 ? m->table + (size_t)token * 4 * H : m->biases[layer];
    const float *p = m->peepholes[layer];
    float *h = m->h[layer], *c = m->c[layer];
    for (int j = lo; j < hi; j++) {
        float a[4];
        four_rows(m, layer, j, K, m->input, a);
        if (add) { a[0] += add[j]; a[1] += add[j + H]; a[2] += add[j + 2 * H]; a[3] += add[j + 3 * H]; }
        float c_prev = c[j];
        if (p) { a[0] += p[j] * c_prev; a[1] += p[j + H] * c_prev; }
        float c_new = sigmoid(a[1]) * c_prev + sigmoid(a[0]) * tanhf(a[2]);
        if (p) a[3] += p[j + 2 * H] * c_new;
        c[j] = c_new;
        h[j] = sigmoid(a[3]) * tanhf(c_new);
    }
}

/* The layers and the output layer for one token: the state moves one step, logits are written. */
static void step(const lm_step_t *m, int64_t token) {
    int H = m->hidden, V = m->vocab;
    #pragma omp parallel num_threads(m->threads)
    {
        for (int layer = 0; layer < m->layers; layer++) {
            #pragma omp single
            {
                if (layer == 0) {
                    memcpy(m->input, m->h[0], (size_t)H * sizeof(float));
                } else {
                    memcpy(m->input, m->h[layer - 1], (size_t)H * sizeof(float));
                    memcpy(m->input + H, m->h[layer], (size_t)H * sizeof(float));
                }
                if (m->precision == BF16) {  /* the input rounded once, for bf16_rows */
                    uint16_t *rounded = (uint16_t *)(m->input + 2 * H);
                    for (int k = 0; k < (layer == 0 ? H : 2 * H); k++) rounded[k] = to_bf16(m->input[k]);
                }
            }  /* a barrier: every thread sees the copy */
            #pragma omp for schedule(static)
            for (int block = 0; block < H; block += 16)
                layer_units(m, layer, token, block, block + 16 < H ? block + 16 : H);
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

/* next_token's draw from one row of logits (V); cdf is scratch (V) */
int64_t rk_draw(const float *logits, float *cdf, int32_t V, float temperature, float u) {
    if (temperature == 0.0f) {
        int64_t best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    float top = -INFINITY;
    for (int v = 0; v < V; v++) {
        cdf[v] = logits[v] / temperature;
        if (cdf[v] > top) top = cdf[v];
    }
    float sum = 0.0f;
    for (int v = 0; v < V; v++) {
        cdf[v] = expf(cdf[v] - top);
        sum += cdf[v];
    }
    double running = 0.0;  /* torch's CPU cumsum sums float32 in double */
    float inv = 1.0f / sum;
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
int64_t rk_lm_sample(const lm_step_t *m, int64_t token, float temperature, float u) {
    step(m, token);
    return rk_draw(m->logits, m->cdf, m->vocab, temperature, u);
}

/* step from token; the logits are in m->logits */
void rk_lm_step(const lm_step_t *m, int64_t token) { step(m, token); }
