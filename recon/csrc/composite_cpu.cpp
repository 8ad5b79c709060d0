// Compiled CPU compositing for recon.rasterize (the "cpu" backend): the same front-to-back
// rule as the pure-torch tiled path and the dense reference (recon/rasterize_reference.py),
// one pixel at a time with early termination, forward and hand-written backward, OpenMP over
// tiles. Built at first use by recon/cpu_kernel.py (torch.utils.cpp_extension.load).
//
// Per pixel p (centre (x+0.5, y+0.5)), Gaussians of its tile in depth order:
//   sigma_i = 0.5 (a dx^2 + c dy^2) + b dx dy, dx = px - mx_i, dy = py - my_i
//   alpha_i = min(alpha_max, o_i exp(-sigma_i)); skipped when < alpha_threshold;
//   stop at the Gaussian with T (1 - alpha_i) <= t_min (not composited);
//   rgb = sum_i alpha_i T_i c_i; acc = 1 - T_final.
// Backward (as _CompositeChunk in rasterize.py): g_i = c_i . dL/drgb,
//   S_i = sum_{j>i} alpha_j T_j g_j,
//   dL/dalpha_i = T_i g_i + (dL/dacc T_final - S_i) / (1 - alpha_i)   (zero where clamped),
//   dL/dsigma_i = -alpha_i dL/dalpha_i, dL/do_i = alpha_i / o_i dL/dalpha_i,
//   dL/dc_i = alpha_i T_i dL/drgb.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// sigma above which o exp(-sigma) is surely below the alpha threshold: such pairs skip the exp
// (a margin of 1e-6 keeps the decision identical to computing alpha, which is what the
// reference does)
template <typename scalar_t>
std::vector<scalar_t> sigma_limits(const scalar_t* opac, int64_t M, double alpha_thr) {
  std::vector<scalar_t> lim(M);
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < M; ++g) {
    const double o = (double)opac[g];
    lim[g] = o > 0 ? (scalar_t)(std::log(o / alpha_thr) + 1e-6 * (1.0 + std::fabs(std::log(o / alpha_thr))))
                   : (scalar_t)-1;
  }
  return lim;
}

// One tile's Gaussians copied out of the scattered [M, ...] inputs into contiguous arrays, in
// list order: every pixel of the tile then reads them sequentially instead of through flat_ids.
template <typename scalar_t>
struct TileGaussians {
  std::vector<scalar_t> mx, my, a, b, c, o, lim, col;
  int64_t n = 0;

  void gather(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opac, const scalar_t* cols,
              const std::vector<scalar_t>& limits, const int64_t* ids, int64_t count, int64_t D) {
    n = count;
    for (auto* v : {&mx, &my, &a, &b, &c, &o, &lim}) v->resize(count);
    col.resize(count * D);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t g = ids[k];
      mx[k] = means2d[2 * g];
      my[k] = means2d[2 * g + 1];
      a[k] = conics[3 * g];
      b[k] = conics[3 * g + 1];
      c[k] = conics[3 * g + 2];
      o[k] = opac[g];
      lim[k] = limits[g];
      for (int64_t d = 0; d < D; ++d) col[k * D + d] = cols[g * D + d];
    }
  }
};

// What the backward replays of one pixel's forward pass: the composited list entries in order.
template <typename scalar_t>
struct Replay {
  std::vector<int64_t> ks;
  std::vector<char> clamped;
  std::vector<scalar_t> expo, alphas, trans;

  void clear() {
    ks.clear(); clamped.clear(); expo.clear(); alphas.clear(); trans.clear();
  }
  void push(int64_t k, bool clamp, scalar_t e, scalar_t alpha, scalar_t T) {
    ks.push_back(k); clamped.push_back(clamp); expo.push_back(e); alphas.push_back(alpha); trans.push_back(T);
  }
};

template <typename scalar_t>
void forward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opac, const scalar_t* cols,
                  const int64_t* flat_ids, const int64_t* offsets, const int64_t* counts, int64_t C, int64_t D,
                  int64_t W, int64_t H, int64_t tile, double alpha_max, double alpha_thr, double t_min,
                  scalar_t* rgb, scalar_t* acc, int32_t* last, int64_t M) {
  const std::vector<scalar_t> lim = sigma_limits(opac, M, alpha_thr);
  const int64_t tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  const int64_t n_tiles = C * th * tw;
  const scalar_t a_max = (scalar_t)alpha_max, a_thr = (scalar_t)alpha_thr, tmin = (scalar_t)t_min;
#pragma omp parallel
  {
    TileGaussians<scalar_t> tg;
    std::vector<scalar_t> T(tile), px(tile * D), sig(tile), fxs(tile);
    std::vector<int32_t> last_k(tile);
    std::vector<char> running(tile);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t cam = t / (th * tw), txy = t % (th * tw);
      const int64_t x0 = (txy % tw) * tile, y0 = (txy / tw) * tile;
      const int64_t cnt = counts[t];
      tg.gather(means2d, conics, opac, cols, lim, flat_ids + offsets[t], cnt, D);
      for (int64_t j = 0; j < tile; ++j) fxs[j] = (scalar_t)(x0 + j) + (scalar_t)0.5;
      const int64_t nx = std::min(x0 + tile, W) - x0;
      for (int64_t y = y0; y < std::min(y0 + tile, H); ++y) {
        const scalar_t fy = (scalar_t)y + (scalar_t)0.5;
        // the row's pixels walk the list together: one test over the row finds the Gaussians
        // that touch none of its pixels still running; each pixel still composites in list order
        std::fill(T.begin(), T.begin() + nx, (scalar_t)1);
        std::fill(px.begin(), px.begin() + nx * D, (scalar_t)0);
        std::fill(last_k.begin(), last_k.begin() + nx, -1);
        std::fill(running.begin(), running.begin() + nx, (char)1);
        int64_t n_running = nx;
        for (int64_t k = 0; k < cnt && n_running > 0; ++k) {
          const scalar_t dy = fy - tg.my[k], mx = tg.mx[k], a = tg.a[k], b = tg.b[k], c = tg.c[k], lk = tg.lim[k];
          char hit = 0;
          for (int64_t j = 0; j < nx; ++j) {
            const scalar_t dx = fxs[j] - mx;
            sig[j] = (scalar_t)0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy;
            hit |= (char)(!(sig[j] > lk) & running[j]);
          }
          if (!hit) continue;
          for (int64_t j = 0; j < nx; ++j) {
            if (!running[j] || sig[j] > lk) continue;
            scalar_t alpha = tg.o[k] * std::exp(-sig[j]);
            if (alpha > a_max) alpha = a_max;
            if (alpha < a_thr) continue;
            const scalar_t next_T = T[j] * ((scalar_t)1 - alpha);
            if (next_T <= tmin) {
              running[j] = 0;
              --n_running;
              continue;
            }
            const scalar_t w = alpha * T[j];
            const scalar_t* cg = &tg.col[k * D];
            for (int64_t d = 0; d < D; ++d) px[j * D + d] += w * cg[d];
            T[j] = next_T;
            last_k[j] = (int32_t)k;
          }
        }
        for (int64_t j = 0; j < nx; ++j) {
          const int64_t pix = (cam * H + y) * W + x0 + j;
          for (int64_t d = 0; d < D; ++d) rgb[pix * D + d] = px[j * D + d];
          acc[pix] = (scalar_t)1 - T[j];
          last[pix] = last_k[j];
        }
      }
    }
  }
}

// Backward: per tile, gradients are summed over the tile's pixels into a per-list-entry buffer
// (contiguous), then added once per entry to the thread's per-Gaussian accumulator.
template <typename scalar_t>
void backward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* opac, const scalar_t* cols,
                   const int64_t* flat_ids, const int64_t* offsets, const int64_t* counts, int64_t C, int64_t D,
                   int64_t W, int64_t H, int64_t tile, double alpha_max, double alpha_thr, const scalar_t* acc,
                   const int32_t* last, const scalar_t* grad_rgb, const scalar_t* grad_acc, int64_t M,
                   scalar_t* g_means, scalar_t* g_conics, scalar_t* g_opac, scalar_t* g_cols, bool need_geo,
                   bool need_cols) {
  const std::vector<scalar_t> lim = sigma_limits(opac, M, alpha_thr);
  const int64_t tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  const int64_t n_tiles = C * th * tw;
  const scalar_t a_max = (scalar_t)alpha_max, a_thr = (scalar_t)alpha_thr;
  int n_threads = 1;
#ifdef _OPENMP
  n_threads = omp_get_max_threads();
#endif
  // per-thread accumulators (thread 0 writes straight into the outputs)
  const int64_t stride = 6 + D;  // mx, my, a, b, c, o, colours
  std::vector<std::vector<scalar_t>> partial(std::max(0, n_threads - 1), std::vector<scalar_t>());
#pragma omp parallel num_threads(n_threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    scalar_t* buf = nullptr;
    if (tid > 0) {
      partial[tid - 1].assign(M * stride, (scalar_t)0);
      buf = partial[tid - 1].data();
    }
    TileGaussians<scalar_t> tg;
    std::vector<scalar_t> local;  // [cnt, stride] gradients of the tile's list entries
    Replay<scalar_t> r;
    std::vector<scalar_t> fxs(tile);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t cam = t / (th * tw), txy = t % (th * tw);
      const int64_t x0 = (txy % tw) * tile, y0 = (txy / tw) * tile;
      const int64_t* ids = flat_ids + offsets[t];
      const int64_t cnt = counts[t];
      if (cnt == 0) continue;
      tg.gather(means2d, conics, opac, cols, lim, ids, cnt, D);
      for (int64_t j = 0; j < tile; ++j) fxs[j] = (scalar_t)(x0 + j) + (scalar_t)0.5;
      local.assign(cnt * stride, (scalar_t)0);
      bool any = false;
      const int64_t nx = std::min(x0 + tile, W) - x0;
      for (int64_t y = y0; y < std::min(y0 + tile, H); ++y) {
        const scalar_t fy = (scalar_t)y + (scalar_t)0.5;
        for (int64_t x = x0; x < x0 + nx; ++x) {
          const int64_t pix = (cam * H + y) * W + x;
          const int32_t lk = last[pix];
          if (lk < 0) continue;
          any = true;
          const scalar_t fx = fxs[x - x0];
          // replay the forward pass up to the last composited Gaussian
          r.clear();
          scalar_t T = 1;
          for (int64_t k = 0; k <= lk; ++k) {
            const scalar_t dx = fx - tg.mx[k], dy = fy - tg.my[k];
            const scalar_t sigma = (scalar_t)0.5 * (tg.a[k] * dx * dx + tg.c[k] * dy * dy) + tg.b[k] * dx * dy;
            if (sigma > tg.lim[k]) continue;
            const scalar_t raw = tg.o[k] * std::exp(-sigma);
            const scalar_t alpha = raw > a_max ? a_max : raw;
            if (alpha < a_thr) continue;
            r.push(k, raw > a_max, raw / tg.o[k], alpha, T);  // raw / o = exp(-sigma), for dL/do
            T = T * ((scalar_t)1 - alpha);
          }
          const std::vector<int64_t>& ks = r.ks;
          const std::vector<char>& clamped = r.clamped;
          const std::vector<scalar_t>&expo = r.expo, &alphas = r.alphas, &trans = r.trans;
          const scalar_t T_final = (scalar_t)1 - acc[pix];
          const scalar_t* gr = grad_rgb + pix * D;
          const scalar_t ga_T = grad_acc[pix] * T_final;
          scalar_t S = 0;  // sum_{j>i} alpha_j T_j g_j
          for (int64_t i = (int64_t)ks.size() - 1; i >= 0; --i) {
            const int64_t k = ks[i];
            const scalar_t* cg = &tg.col[k * D];
            const scalar_t alpha = alphas[i], Ti = trans[i], w = alpha * Ti;
            scalar_t gdot = 0;
            for (int64_t d = 0; d < D; ++d) gdot += cg[d] * gr[d];
            scalar_t* out = &local[k * stride];
            if (need_cols)
              for (int64_t d = 0; d < D; ++d) out[6 + d] += w * gr[d];
            if (need_geo && !clamped[i]) {  // a clamped alpha has no gradient
              const scalar_t dx = fx - tg.mx[k], dy = fy - tg.my[k];
              const scalar_t a = tg.a[k], b = tg.b[k], c = tg.c[k];
              const scalar_t d_alpha = Ti * gdot + (ga_T - S) / ((scalar_t)1 - alpha);
              const scalar_t d_sigma = -alpha * d_alpha;
              out[0] += -(a * dx + b * dy) * d_sigma;
              out[1] += -(c * dy + b * dx) * d_sigma;
              out[2] += (scalar_t)0.5 * dx * dx * d_sigma;
              out[3] += dx * dy * d_sigma;
              out[4] += (scalar_t)0.5 * dy * dy * d_sigma;
              out[5] += expo[i] * d_alpha;
            }
            S += w * gdot;
          }
        }
      }
      if (!any) continue;
      for (int64_t k = 0; k < cnt; ++k) {
        const int64_t g = ids[k];
        const scalar_t* q = &local[k * stride];
        if (buf) {
          scalar_t* o = buf + g * stride;
          for (int64_t j = 0; j < stride; ++j) o[j] += q[j];
        } else {
          g_means[2 * g] += q[0]; g_means[2 * g + 1] += q[1];
          g_conics[3 * g] += q[2]; g_conics[3 * g + 1] += q[3]; g_conics[3 * g + 2] += q[4];
          g_opac[g] += q[5];
          for (int64_t d = 0; d < D; ++d) g_cols[g * D + d] += q[6 + d];
        }
      }
    }
  }
  // reduce the per-thread accumulators
  for (auto& p : partial) {
    if (p.empty()) continue;
    const scalar_t* q = p.data();
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < M; ++g) {
      const scalar_t* o = q + g * stride;
      g_means[2 * g] += o[0]; g_means[2 * g + 1] += o[1];
      g_conics[3 * g] += o[2]; g_conics[3 * g + 1] += o[3]; g_conics[3 * g + 2] += o[4];
      g_opac[g] += o[5];
      for (int64_t d = 0; d < D; ++d) g_cols[g * D + d] += o[6 + d];
    }
  }
}

void check(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
}

}  // namespace

// means2d [M,2], conics [M,3], opac [M], cols [M,D] (M = C*N, one dtype), tile lists (int64).
// Returns rgb [C,H,W,D], acc [C,H,W,1], last [C,H,W] (int32, last composited list index or -1).
std::vector<torch::Tensor> composite_forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opac,
                                             torch::Tensor cols, torch::Tensor flat_ids, torch::Tensor offsets,
                                             torch::Tensor counts, int64_t C, int64_t W, int64_t H, int64_t tile,
                                             double alpha_max, double alpha_thr, double t_min) {
  for (auto* p : {&means2d, &conics, &opac, &cols, &flat_ids, &offsets, &counts}) check(*p, "input");
  const int64_t D = cols.size(1);
  auto rgb = torch::empty({C, H, W, D}, cols.options());
  auto acc = torch::empty({C, H, W, 1}, cols.options());
  auto last = torch::empty({C, H, W}, cols.options().dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(cols.scalar_type(), "composite_forward", [&] {
    forward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), opac.data_ptr<scalar_t>(),
                           cols.data_ptr<scalar_t>(), flat_ids.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                           counts.data_ptr<int64_t>(), C, D, W, H, tile, alpha_max, alpha_thr, t_min,
                           rgb.data_ptr<scalar_t>(), acc.data_ptr<scalar_t>(), last.data_ptr<int32_t>(),
                           cols.size(0));
  });
  return {rgb, acc, last};
}

std::vector<torch::Tensor> composite_backward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opac,
                                              torch::Tensor cols, torch::Tensor flat_ids, torch::Tensor offsets,
                                              torch::Tensor counts, int64_t C, int64_t W, int64_t H, int64_t tile,
                                              double alpha_max, double alpha_thr, torch::Tensor acc,
                                              torch::Tensor last, torch::Tensor grad_rgb, torch::Tensor grad_acc,
                                              bool need_geo, bool need_cols) {
  for (auto* p : {&means2d, &conics, &opac, &cols, &flat_ids, &offsets, &counts, &acc, &last, &grad_rgb, &grad_acc})
    check(*p, "input");
  const int64_t M = cols.size(0), D = cols.size(1);
  auto g_means = torch::zeros_like(means2d);
  auto g_conics = torch::zeros_like(conics);
  auto g_opac = torch::zeros_like(opac);
  auto g_cols = torch::zeros_like(cols);
  AT_DISPATCH_FLOATING_TYPES(cols.scalar_type(), "composite_backward", [&] {
    backward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), opac.data_ptr<scalar_t>(),
                            cols.data_ptr<scalar_t>(), flat_ids.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                            counts.data_ptr<int64_t>(), C, D, W, H, tile, alpha_max, alpha_thr,
                            acc.data_ptr<scalar_t>(), last.data_ptr<int32_t>(), grad_rgb.data_ptr<scalar_t>(),
                            grad_acc.data_ptr<scalar_t>(), M, g_means.data_ptr<scalar_t>(),
                            g_conics.data_ptr<scalar_t>(), g_opac.data_ptr<scalar_t>(), g_cols.data_ptr<scalar_t>(),
                            need_geo, need_cols);
  });
  return {g_means, g_conics, g_opac, g_cols};
}

// Tile lists (what tile_intersections in rasterize.py computes with sorts over all pairs): per
// camera, the visible Gaussians (both radii > 0) in a stable depth order, each appended to every
// tile its screen-space box overlaps. Bins are sized by a counting pass, so the lists come out
// sorted by tile, then depth, then Gaussian index, with no sort over the pairs.
template <typename scalar_t>
void tile_lists_impl(const scalar_t* means2d, const int32_t* radii, const scalar_t* depths, int64_t C, int64_t N,
                     int64_t W, int64_t H, int64_t tile, std::vector<int64_t>& ids, int64_t* offsets,
                     int64_t* counts) {
  const int64_t tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile, per_cam = th * tw;
  std::vector<std::vector<int64_t>> order(C);
  std::vector<int64_t> box(C * N * 4);
  for (int64_t cam = 0; cam < C; ++cam) {
    auto& o = order[cam];
    for (int64_t g = 0; g < N; ++g) {
      const int64_t k = cam * N + g;
      if (radii[2 * k] <= 0 || radii[2 * k + 1] <= 0) continue;
      o.push_back(g);
      const scalar_t ts = (scalar_t)tile;
      const scalar_t mx = means2d[2 * k], my = means2d[2 * k + 1];
      const scalar_t rx = (scalar_t)radii[2 * k], ry = (scalar_t)radii[2 * k + 1];
      auto cell = [](scalar_t v, int64_t hi) {
        const double f = std::isnan((double)v) ? 0.0 : std::floor((double)v);
        return (int64_t)std::min<double>(std::max<double>(f, 0.0), (double)hi);
      };
      box[4 * k + 0] = cell((mx - rx) / ts, tw - 1);
      box[4 * k + 1] = cell((mx + rx) / ts, tw - 1);
      box[4 * k + 2] = cell((my - ry) / ts, th - 1);
      box[4 * k + 3] = cell((my + ry) / ts, th - 1);
    }
    const scalar_t* d = depths + cam * N;
    // NaN depths sort last, as torch.argsort puts them
    std::stable_sort(o.begin(), o.end(), [d](int64_t a, int64_t b) {
      const bool na = std::isnan((double)d[a]), nb = std::isnan((double)d[b]);
      if (na || nb) return !na && nb;
      return d[a] < d[b];
    });
    for (int64_t g : o) {
      const int64_t* bx = &box[4 * (cam * N + g)];
      for (int64_t ty = bx[2]; ty <= bx[3]; ++ty)
        for (int64_t tx = bx[0]; tx <= bx[1]; ++tx) ++counts[cam * per_cam + ty * tw + tx];
    }
  }
  int64_t total = 0;
  for (int64_t t = 0; t < C * per_cam; ++t) {
    offsets[t] = total;
    total += counts[t];
  }
  ids.assign(total, 0);
  std::vector<int64_t> cursor(offsets, offsets + C * per_cam);
  for (int64_t cam = 0; cam < C; ++cam) {
    for (int64_t g : order[cam]) {
      const int64_t* bx = &box[4 * (cam * N + g)];
      for (int64_t ty = bx[2]; ty <= bx[3]; ++ty)
        for (int64_t tx = bx[0]; tx <= bx[1]; ++tx) ids[cursor[cam * per_cam + ty * tw + tx]++] = cam * N + g;
    }
  }
}

std::vector<torch::Tensor> tile_lists(torch::Tensor means2d, torch::Tensor radii, torch::Tensor depths, int64_t W,
                                      int64_t H, int64_t tile) {
  for (auto* p : {&means2d, &radii, &depths}) check(*p, "input");
  TORCH_CHECK(radii.scalar_type() == torch::kInt32, "radii must be int32");
  const int64_t C = depths.size(0), N = depths.size(1);
  const int64_t tw = (W + tile - 1) / tile, th = (H + tile - 1) / tile;
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  auto offsets = torch::zeros({C * th * tw}, opts);
  auto counts = torch::zeros({C * th * tw}, opts);
  std::vector<int64_t> ids;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "tile_lists", [&] {
    tile_lists_impl<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), depths.data_ptr<scalar_t>(), C,
                              N, W, H, tile, ids, offsets.data_ptr<int64_t>(), counts.data_ptr<int64_t>());
  });
  auto flat_ids = torch::empty({(int64_t)ids.size()}, opts);
  std::copy(ids.begin(), ids.end(), flat_ids.data_ptr<int64_t>());
  return {flat_ids, offsets, counts};
}

// defined in project_cpu.cpp (the same extension)
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                           torch::Tensor viewmats, torch::Tensor Ks, int64_t W, int64_t H,
                                           double eps2d);
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                            torch::Tensor viewmats, torch::Tensor Ks, int64_t W, int64_t H,
                                            double eps2d, torch::Tensor g_means2d, torch::Tensor g_depths,
                                            torch::Tensor g_conics);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tile_lists", &tile_lists, "tile/Gaussian overlap lists sorted by tile then depth (CPU)");
  m.def("composite_forward", &composite_forward, "tiled front-to-back compositing (CPU)");
  m.def("composite_backward", &composite_backward, "its backward (CPU)");
  m.def("project_forward", &project_forward, "EWA projection of 3D Gaussians (CPU)");
  m.def("project_backward", &project_backward, "its backward to means, quats and scales (CPU)");
}
