/* The pointwise part of one time step of the LSTM (peepholes or not) and of the layer-normalised LSTM,
 * forward and backward, in float32: what rnnkit/kernels/lstm.py and layer_norm_lstm.py do per step in a
 * dozen torch ops, here in one call. The recurrent products stay in torch (oneDNN / BLAS); the caller runs
 * them between these calls. Built at first use by rnnkit/kernels/native.py, called through ctypes with the
 * step index t; every array is contiguous, (T, B, .) step-major as the Python kernels keep them.
 *
 * LSTM forward, per row b and unit j (gate rows i, f, g, o; a = acts[t] holds xp_t + W_h h_{t-1} on entry):
 *   i = s(a_i + p_i c),  f = s(a_f + p_f c),  g = tanh(a_g),  c' = f c + i g,  o = s(a_o + p_o c'),
 *   h' = o tanh(c');  acts[t] <- (i, f, g, o); where keep[t, b] is 0 the state is held: c' = c, h' = h.
 * LSTM backward from dh = d_out[t] + dh_rec and dc (in place: δc_t in, δc_{t-1} out):
 *   dc += dh o (1 - tanh² c') + δa_o p_o,  δa_o = dh tanh(c') o (1 - o)
 *   δa_i = dc g i (1 - i),  δa_f = dc c f (1 - f),  δa_g = dc i (1 - g²)
 *   δc_{t-1} = dc f + δa_i p_i + δa_f p_f;  d_peep[b] += (δa_i c, δa_f c, δa_o c')
 *   a held row passes dh to hold_h and dc straight on; its δa are 0.
 * Layer norm: LN(v; γ, β) = γ (v - mean) rstd + β over a row, rstd = 1 / sqrt(var + eps) (biased var);
 * its input gradient from dy: rstd (γ dy - mean(γ dy) - v̂ mean(γ dy v̂)), v̂ = (v - mean) rstd.
 * Layer-norm LSTM forward: a = x̂_t + LN(r_t; γ_h, β_h) with r_t = W_h h_{t-1}; c' as above without
 *   peepholes; h' = o tanh(LN(c'; γ_c, β_c)); the means and rstds of r_t and c' are saved.
 * Layer-norm LSTM backward: δĉ = dh o (1 - tanh² ĉ) (saved), dc += LN'(δĉ), the cell's δa_i, δa_f, δa_g,
 *   δa_o as above, and δr_t = LN'(δa) (saved: the caller multiplies it by W_h).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int32_t batch, hidden, threads;
    float eps;
    float *acts;            /* (T, B, 4H) */
    float *hs, *cs;         /* (T + 1, B, H) */
    float *tanh_c;          /* (T, B, H): tanh(c'), or tanh(LN(c')) */
    const float *peep;      /* (3, H) or NULL */
    const uint8_t *keep;    /* (T, B) or NULL */
    const float *d_out;     /* (T, B, H) */
    float *dh_rec;          /* (B, H): W_h^T δa of step t + 1, on entry to step t's backward */
    float *dc;              /* (B, H) */
    float *d_acts;          /* (T, B, 4H) */
    float *hold_h;          /* (B, H), written where keep is 0; NULL without keep */
    float *d_peep;          /* (B, 3H) accumulators or NULL */
    /* layer norm only */
    const float *x_hat;     /* (B, 4H): LN(xp_t), the caller's chunk view of step t */
    float *rs;              /* (T, B, 4H): W_h h_{t-1} */
    const float *gamma_h, *beta_h, *gamma_c, *beta_c;  /* (4H), (4H), (H), (H) */
    float *mean_r, *rstd_r, *mean_c, *rstd_c;          /* (T, B) */
    float *d_ln_c;          /* (T, B, H) */
    float *d_rs;            /* (T, B, 4H) */
    float *scratch;         /* (B, 4H) */
} lstm_steps_t;

/* exp to ~2 ulp in plain arithmetic (Cody-Waite reduction, Cephes' polynomial), so that loops vectorize;
 * NaN stays NaN */
static inline float exp_(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }
static inline float tanh__(float x) { return 2.0f / (1.0f + exp_(-2.0f * x)) - 1.0f; }

static inline size_t at(const lstm_steps_t *s, int t, int b, int width) {
    return ((size_t)t * s->batch + b) * (size_t)width;
}

static int threads_for(const lstm_steps_t *s) {
    /* a parallel region costs a few µs to start; below this many values (a choice, not tuned) one thread runs */
    return (size_t)s->batch * s->hidden >= 4096 ? s->threads : 1;
}

/* where row b's sequence has ended at step t, its state is held: c' = c, h' = h */
static inline void hold_state(const lstm_steps_t *s, int t, int b, const float *c, const float *h, float *c_new,
                              float *h_new) {
    if (s->keep && !s->keep[(size_t)t * s->batch + b]) {
        memcpy(c_new, c, (size_t)s->hidden * sizeof(float));
        memcpy(h_new, h, (size_t)s->hidden * sizeof(float));
    }
}

void rk_lstm_forward(const lstm_steps_t *s, int t) {
    int B = s->batch, H = s->hidden;
    #pragma omp parallel for num_threads(threads_for(s)) schedule(static)
    for (int b = 0; b < B; b++) {
        float *a = s->acts + at(s, t, b, 4 * H);
        const float *c = s->cs + at(s, t, b, H), *h = s->hs + at(s, t, b, H);
        float *c_new = s->cs + at(s, t + 1, b, H), *h_new = s->hs + at(s, t + 1, b, H);
        float *tc = s->tanh_c + at(s, t, b, H);
        const float *p = s->peep;
        #pragma omp simd
        for (int j = 0; j < H; j++) {
            float i = sigmoid_(a[j] + (p ? p[j] * c[j] : 0.0f));
            float f = sigmoid_(a[H + j] + (p ? p[H + j] * c[j] : 0.0f));
            float g = tanh__(a[2 * H + j]);
            float cn = f * c[j] + i * g;
            float o = sigmoid_(a[3 * H + j] + (p ? p[2 * H + j] * cn : 0.0f));
            float tcn = tanh__(cn);
            a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
            c_new[j] = cn; tc[j] = tcn; h_new[j] = o * tcn;
        }
        hold_state(s, t, b, c, h, c_new, h_new);
    }
}

/* δa_i, δa_f, δa_g from dc, then dc <- dc f (+ the peepholes' paths) */
static inline void cell_backward(float *restrict da, float *restrict dc, const float *a, const float *c,
                                 const float *p, float *dp, int H) {
    #pragma omp simd
    for (int j = 0; j < H; j++) {
        float i = a[j], f = a[H + j], g = a[2 * H + j];
        float dai = dc[j] * g * i * (1.0f - i);
        float daf = dc[j] * c[j] * f * (1.0f - f);
        da[j] = dai; da[H + j] = daf; da[2 * H + j] = dc[j] * i * (1.0f - g * g);
        dc[j] = dc[j] * f + (p ? dai * p[j] + daf * p[H + j] : 0.0f);
        if (dp) { dp[j] += dai * c[j]; dp[H + j] += daf * c[j]; }
    }
}

/* dh = d_out + dh_rec for row b; a held row moves it to hold_h and returns 1 (its δa are zero) */
static inline int upstream(const lstm_steps_t *s, int t, int b, float *dh, float *da, int G) {
    int H = s->hidden;
    const float *d_out = s->d_out + at(s, t, b, H), *rec = s->dh_rec + (size_t)b * H;
    for (int j = 0; j < H; j++) dh[j] = d_out[j] + rec[j];
    if (s->keep && !s->keep[(size_t)t * s->batch + b]) {
        memcpy(s->hold_h + (size_t)b * H, dh, (size_t)H * sizeof(float));
        memset(da, 0, (size_t)G * sizeof(float));
        return 1;
    }
    if (s->hold_h) memset(s->hold_h + (size_t)b * H, 0, (size_t)H * sizeof(float));
    return 0;
}

void rk_lstm_backward(const lstm_steps_t *s, int t) {
    int B = s->batch, H = s->hidden;
    #pragma omp parallel for num_threads(threads_for(s)) schedule(static)
    for (int b = 0; b < B; b++) {
        float *da = s->d_acts + at(s, t, b, 4 * H), *dc = s->dc + (size_t)b * H;
        float *dh = s->scratch + (size_t)b * 4 * H;
        if (upstream(s, t, b, dh, da, 4 * H)) continue;  /* dc passes on unchanged */
        const float *a = s->acts + at(s, t, b, 4 * H), *tc = s->tanh_c + at(s, t, b, H);
        const float *c = s->cs + at(s, t, b, H), *c_new = s->cs + at(s, t + 1, b, H);
        const float *p = s->peep;
        float *dp = s->d_peep ? s->d_peep + (size_t)b * 3 * H : NULL;
        #pragma omp simd
        for (int j = 0; j < H; j++) {
            float o = a[3 * H + j];
            float dao = dh[j] * tc[j] * o * (1.0f - o);
            da[3 * H + j] = dao;
            dc[j] += dh[j] * o * (1.0f - tc[j] * tc[j]) + (p ? dao * p[2 * H + j] : 0.0f);
            if (dp) dp[2 * H + j] += dao * c_new[j];
        }
        cell_backward(da, dc, a, c, p, dp, H);
    }
}

/* mean and rstd of v (n), and y = γ (v - mean) rstd + β */
static inline void layer_norm(const float *v, int n, const float *gamma, const float *beta, float eps, float *y,
                              float *mean_out, float *rstd_out) {
    float sum = 0.0f, sq = 0.0f;
    for (int k = 0; k < n; k++) sum += v[k];
    float mean = sum / n;
    for (int k = 0; k < n; k++) sq += (v[k] - mean) * (v[k] - mean);
    float rstd = 1.0f / sqrtf(sq / n + eps);
    for (int k = 0; k < n; k++) y[k] = gamma[k] * (v[k] - mean) * rstd + beta[k];
    *mean_out = mean;
    *rstd_out = rstd;
}

/* dv = rstd (γ dy - mean(γ dy) - v̂ mean(γ dy v̂)) for a row of n (dv must not be dy). γ dy is stored in dv
 * first and read back, rounded once: were it computed twice, a fused multiply-add in one place and not the
 * other would leave γ dy - mean(γ dy) a rounding error instead of 0 where it is 0 (n = 1), times rstd. */
static inline void layer_norm_backward(const float *dy, const float *v, int n, const float *gamma, float mean,
                                       float rstd, float *dv) {
    float m1 = 0.0f, m2 = 0.0f;
    for (int k = 0; k < n; k++) {
        dv[k] = gamma[k] * dy[k];
        m1 += dv[k];
        m2 += dv[k] * ((v[k] - mean) * rstd);
    }
    m1 /= n;
    m2 /= n;
    for (int k = 0; k < n; k++) dv[k] = rstd * (dv[k] - m1 - (v[k] - mean) * rstd * m2);
}

void rk_ln_lstm_forward(const lstm_steps_t *s, int t) {
    int B = s->batch, H = s->hidden, G = 4 * H;
    #pragma omp parallel for num_threads(threads_for(s)) schedule(static)
    for (int b = 0; b < B; b++) {
        float *a = s->acts + at(s, t, b, G), *r = s->rs + at(s, t, b, G);
        const float *x_hat = s->x_hat + (size_t)b * G;
        const float *c = s->cs + at(s, t, b, H), *h = s->hs + at(s, t, b, H);
        float *c_new = s->cs + at(s, t + 1, b, H), *h_new = s->hs + at(s, t + 1, b, H);
        float *tc = s->tanh_c + at(s, t, b, H), *c_hat = s->scratch + (size_t)b * G;
        size_t row = (size_t)t * B + b;
        layer_norm(r, G, s->gamma_h, s->beta_h, s->eps, a, &s->mean_r[row], &s->rstd_r[row]);
        #pragma omp simd
        for (int j = 0; j < H; j++) {
            float i = sigmoid_(x_hat[j] + a[j]), f = sigmoid_(x_hat[H + j] + a[H + j]);
            float g = tanh__(x_hat[2 * H + j] + a[2 * H + j]), o = sigmoid_(x_hat[3 * H + j] + a[3 * H + j]);
            a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
            c_new[j] = f * c[j] + i * g;
        }
        layer_norm(c_new, H, s->gamma_c, s->beta_c, s->eps, c_hat, &s->mean_c[row], &s->rstd_c[row]);
        #pragma omp simd
        for (int j = 0; j < H; j++) {
            tc[j] = tanh__(c_hat[j]);
            h_new[j] = a[3 * H + j] * tc[j];
        }
        hold_state(s, t, b, c, h, c_new, h_new);
    }
}

void rk_ln_lstm_backward(const lstm_steps_t *s, int t) {
    int B = s->batch, H = s->hidden, G = 4 * H;
    #pragma omp parallel for num_threads(threads_for(s)) schedule(static)
    for (int b = 0; b < B; b++) {
        float *da = s->d_acts + at(s, t, b, G), *dc = s->dc + (size_t)b * H;
        float *d_ln_c = s->d_ln_c + at(s, t, b, H), *d_r = s->d_rs + at(s, t, b, G);
        float *dh = s->scratch + (size_t)b * G, *d_c_ln = dh + H;
        size_t row = (size_t)t * B + b;
        if (upstream(s, t, b, dh, da, G)) {
            memset(d_ln_c, 0, (size_t)H * sizeof(float));
            memset(d_r, 0, (size_t)G * sizeof(float));
            continue;
        }
        const float *a = s->acts + at(s, t, b, G), *tc = s->tanh_c + at(s, t, b, H);
        const float *c = s->cs + at(s, t, b, H), *c_new = s->cs + at(s, t + 1, b, H);
        #pragma omp simd
        for (int j = 0; j < H; j++) {
            float o = a[3 * H + j];
            d_ln_c[j] = dh[j] * o * (1.0f - tc[j] * tc[j]);
            da[3 * H + j] = dh[j] * tc[j] * o * (1.0f - o);
        }
        layer_norm_backward(d_ln_c, c_new, H, s->gamma_c, s->mean_c[row], s->rstd_c[row], d_c_ln);
        for (int j = 0; j < H; j++) dc[j] += d_c_ln[j];
        cell_backward(da, dc, a, c, NULL, NULL, H);
        layer_norm_backward(da, s->rs + at(s, t, b, G), G, s->gamma_h, s->mean_r[row], s->rstd_r[row], d_r);
    }
}
