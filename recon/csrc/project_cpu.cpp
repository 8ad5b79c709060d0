// Compiled EWA projection for the "cpu" rasteriser backend: the maths of
// recon/projection.py:project_gaussians (pinhole cameras, OpenCV axes), forward and a
// hand-written backward to means, quaternions and scales, one camera-Gaussian pair per
// iteration, OpenMP over Gaussians. The torch function stays the reference; a test holds the
// two equal in value and gradient.
//
// Per camera (R, t, fx, fy, cx, cy) and Gaussian (m, q, s):
//   q_n = q / max(|q|, 1e-12), M = rot(q_n) diag(s), Sigma = M M^T
//   p = R m + t = (tx, ty, tz), V = R Sigma R^T
//   txc = tz clamp(tx / tz, -lim_x_neg, lim_x_pos) (tyc likewise), the 1.3x frustum clamp
//   J = [[fx/tz, 0, -fx txc/tz^2], [0, fy/tz, -fy tyc/tz^2]]
//   cov2d = J V J^T + eps2d I = [[a, b], [b, c]], det = max(a c - b^2, 1e-10)
//   means2d = (fx tx/tz + cx, fy ty/tz + cy), conic = (c, -b, a) / det, depth = tz.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

template <typename T>
struct Mat3 {
  T v[3][3];
};

template <typename T>
Mat3<T> rotmat(const T* q_raw, T q[4], T& norm) {
  norm = std::sqrt(q_raw[0] * q_raw[0] + q_raw[1] * q_raw[1] + q_raw[2] * q_raw[2] + q_raw[3] * q_raw[3]);
  const T n = std::max(norm, (T)1e-12);
  for (int i = 0; i < 4; ++i) q[i] = q_raw[i] / n;
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  Mat3<T> R;
  R.v[0][0] = 1 - 2 * (y * y + z * z); R.v[0][1] = 2 * (x * y - w * z); R.v[0][2] = 2 * (x * z + w * y);
  R.v[1][0] = 2 * (x * y + w * z); R.v[1][1] = 1 - 2 * (x * x + z * z); R.v[1][2] = 2 * (y * z - w * x);
  R.v[2][0] = 2 * (x * z - w * y); R.v[2][1] = 2 * (y * z + w * x); R.v[2][2] = 1 - 2 * (x * x + y * y);
  return R;
}

template <typename T>
struct Camera {
  T R[3][3], t[3], fx, fy, cx, cy, lxp, lxn, lyp, lyn;

  Camera(const T* view, const T* K, int64_t W, int64_t H) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) R[i][j] = view[4 * i + j];
      t[i] = view[4 * i + 3];
    }
    fx = K[0]; fy = K[4]; cx = K[2]; cy = K[5];
    lxp = ((T)W - cx) / fx + (T)0.3 * ((T)0.5 * (T)W / fx);
    lxn = cx / fx + (T)0.3 * ((T)0.5 * (T)W / fx);
    lyp = ((T)H - cy) / fy + (T)0.3 * ((T)0.5 * (T)H / fy);
    lyn = cy / fy + (T)0.3 * ((T)0.5 * (T)H / fy);
  }
};

// Everything the backward needs about one camera-Gaussian pair, recomputed from the inputs.
template <typename T>
struct Pair {
  T q[4], qnorm, Rq[3][3], M[3][3], Sigma[3][3], p[3], RS[3][3], V[3][3], txc, tyc, J[2][3];
  T a, b, c, det_raw, det;
  bool cx_clamped, cy_clamped;
  T x_bound, y_bound;

  Pair(const Camera<T>& cam, const T* m, const T* q_raw, const T* s) {
    Mat3<T> R = rotmat(q_raw, q, qnorm);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        Rq[i][j] = R.v[i][j];
        M[i][j] = R.v[i][j] * s[j];
      }
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) Sigma[i][j] = M[i][0] * M[j][0] + M[i][1] * M[j][1] + M[i][2] * M[j][2];
    for (int i = 0; i < 3; ++i)
      p[i] = cam.R[i][0] * m[0] + cam.R[i][1] * m[1] + cam.R[i][2] * m[2] + cam.t[i];
    for (int i = 0; i < 3; ++i)  // RS = R Sigma
      for (int j = 0; j < 3; ++j)
        RS[i][j] = cam.R[i][0] * Sigma[0][j] + cam.R[i][1] * Sigma[1][j] + cam.R[i][2] * Sigma[2][j];
    for (int i = 0; i < 3; ++i)  // V = RS R^T
      for (int j = 0; j < 3; ++j) V[i][j] = RS[i][0] * cam.R[j][0] + RS[i][1] * cam.R[j][1] + RS[i][2] * cam.R[j][2];
    const T tz = p[2];
    const T rx = p[0] / tz, ry = p[1] / tz;
    const T ux = std::min(std::max(rx, -cam.lxn), cam.lxp), uy = std::min(std::max(ry, -cam.lyn), cam.lyp);
    cx_clamped = !(rx > -cam.lxn && rx < cam.lxp);
    cy_clamped = !(ry > -cam.lyn && ry < cam.lyp);
    x_bound = ux;
    y_bound = uy;
    txc = tz * ux;
    tyc = tz * uy;
    J[0][0] = cam.fx / tz; J[0][1] = 0; J[0][2] = -cam.fx * txc / (tz * tz);
    J[1][0] = 0; J[1][1] = cam.fy / tz; J[1][2] = -cam.fy * tyc / (tz * tz);
    T JV[2][3];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) JV[i][j] = J[i][0] * V[0][j] + J[i][1] * V[1][j] + J[i][2] * V[2][j];
    T cov[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) cov[i][j] = JV[i][0] * J[j][0] + JV[i][1] * J[j][1] + JV[i][2] * J[j][2];
    a = cov[0][0];
    b = (T)0.5 * (cov[0][1] + cov[1][0]);
    c = cov[1][1];
    det_raw = 0;  // set by with_eps
    det = 0;
  }

  void with_eps(T eps2d) {
    a += eps2d;
    c += eps2d;
    det_raw = a * c - b * b;
    det = std::max(det_raw, (T)1e-10);
  }
};

template <typename T>
void forward_impl(const T* means, const T* quats, const T* scales, const T* viewmats, const T* Ks, int64_t C,
                  int64_t N, int64_t W, int64_t H, T eps2d, T* means2d, T* depths, T* conics, T* cov2d) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < C * N; ++k) {
    const int64_t ci = k / N, g = k % N;
    const Camera<T> cam(viewmats + 16 * ci, Ks + 9 * ci, W, H);
    Pair<T> pr(cam, means + 3 * g, quats + 4 * g, scales + 3 * g);
    pr.with_eps(eps2d);
    const T tz = pr.p[2];
    means2d[2 * k] = cam.fx * pr.p[0] / tz + cam.cx;
    means2d[2 * k + 1] = cam.fy * pr.p[1] / tz + cam.cy;
    depths[k] = tz;
    conics[3 * k] = pr.c / pr.det;
    conics[3 * k + 1] = -pr.b / pr.det;
    conics[3 * k + 2] = pr.a / pr.det;
    cov2d[3 * k] = pr.a;
    cov2d[3 * k + 1] = pr.b;
    cov2d[3 * k + 2] = pr.c;
  }
}

// Gradients of means [N,3], quats [N,4], scales [N,3] from those of means2d [C,N,2], depths
// [C,N] and conics [C,N,3]. Each thread owns a range of Gaussians and loops over the cameras,
// so no two threads write the same output.
template <typename T>
void backward_impl(const T* means, const T* quats, const T* scales, const T* viewmats, const T* Ks, int64_t C,
                   int64_t N, int64_t W, int64_t H, T eps2d, const T* g_means2d, const T* g_depths,
                   const T* g_conics, T* g_means, T* g_quats, T* g_scales) {
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < N; ++g) {
    T gm[3] = {0, 0, 0}, gS[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    // quats and scales share Sigma's gradient, summed over the cameras first
    T q_n[4] = {0, 0, 0, 0}, qnorm = 0, Rq[3][3], s[3] = {scales[3 * g], scales[3 * g + 1], scales[3 * g + 2]};
    for (int64_t ci = 0; ci < C; ++ci) {
      const int64_t k = ci * N + g;
      const Camera<T> cam(viewmats + 16 * ci, Ks + 9 * ci, W, H);
      Pair<T> pr(cam, means + 3 * g, quats + 4 * g, scales + 3 * g);
      pr.with_eps(eps2d);
      if (ci == 0) {
        for (int i = 0; i < 4; ++i) q_n[i] = pr.q[i];
        qnorm = pr.qnorm;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) Rq[i][j] = pr.Rq[i][j];
      }
      const T tz = pr.p[2], tx = pr.p[0], ty = pr.p[1];
      // conic = (c, -b, a) / det
      const T gA = g_conics[3 * k], gB = g_conics[3 * k + 1], gC = g_conics[3 * k + 2];
      T ga, gb, gc;
      if (pr.det_raw >= (T)1e-10) {
        const T d2 = pr.det * pr.det, a = pr.a, b = pr.b, c = pr.c;
        // d(c/det), d(-b/det), d(a/det) with det = a c - b^2
        ga = gA * (-c * c / d2) + gB * (b * c / d2) + gC * ((T)1 / pr.det - a * c / d2);
        gb = gA * (2 * b * c / d2) + gB * (-(T)1 / pr.det - 2 * b * b / d2) + gC * (2 * a * b / d2);
        gc = gA * ((T)1 / pr.det - c * a / d2) + gB * (b * a / d2) + gC * (-a * a / d2);
      } else {  // the clamped determinant is a constant
        ga = gC / pr.det;
        gb = -gB / pr.det;
        gc = gA / pr.det;
      }
      // cov2d = J V J^T: G symmetric with G01 = G10 = gb / 2
      const T G[2][2] = {{ga, (T)0.5 * gb}, {(T)0.5 * gb, gc}};
      T GJ[2][3];  // G J
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) GJ[i][j] = G[i][0] * pr.J[0][j] + G[i][1] * pr.J[1][j];
      T gV[3][3];  // J^T G J
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) gV[i][j] = pr.J[0][i] * GJ[0][j] + pr.J[1][i] * GJ[1][j];
      T gJ[2][3];  // 2 G J V
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          gJ[i][j] = 2 * (GJ[i][0] * pr.V[0][j] + GJ[i][1] * pr.V[1][j] + GJ[i][2] * pr.V[2][j]);
      T gtx = 0, gty = 0, gtz = 0;
      const T tz2 = tz * tz, tz3 = tz2 * tz;
      gtz += gJ[0][0] * (-cam.fx / tz2) + gJ[0][2] * (2 * cam.fx * pr.txc / tz3);
      gtz += gJ[1][1] * (-cam.fy / tz2) + gJ[1][2] * (2 * cam.fy * pr.tyc / tz3);
      const T gtxc = gJ[0][2] * (-cam.fx / tz2), gtyc = gJ[1][2] * (-cam.fy / tz2);
      // txc = tz clamp(tx / tz): tx inside the bounds, tz times the bound outside
      if (pr.cx_clamped) gtz += gtxc * pr.x_bound;
      else gtx += gtxc;
      if (pr.cy_clamped) gtz += gtyc * pr.y_bound;
      else gty += gtyc;
      // means2d and depth
      const T gu = g_means2d[2 * k], gv = g_means2d[2 * k + 1];
      gtx += gu * cam.fx / tz;
      gty += gv * cam.fy / tz;
      gtz += -gu * cam.fx * tx / tz2 - gv * cam.fy * ty / tz2 + g_depths[k];
      // p = R m + t
      const T gp[3] = {gtx, gty, gtz};
      for (int j = 0; j < 3; ++j) gm[j] += cam.R[0][j] * gp[0] + cam.R[1][j] * gp[1] + cam.R[2][j] * gp[2];
      // V = R Sigma R^T: gSigma += R^T gV R
      T tmp[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) tmp[i][j] = gV[i][0] * cam.R[0][j] + gV[i][1] * cam.R[1][j] + gV[i][2] * cam.R[2][j];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) gS[i][j] += cam.R[0][i] * tmp[0][j] + cam.R[1][i] * tmp[1][j] + cam.R[2][i] * tmp[2][j];
    }
    for (int j = 0; j < 3; ++j) g_means[3 * g + j] = gm[j];
    if (C == 0) continue;
    // Sigma = M M^T: gM = (gS + gS^T) M; M = Rq diag(s)
    T M[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) M[i][j] = Rq[i][j] * s[j];
    T gM[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        T acc = 0;
        for (int l = 0; l < 3; ++l) acc += (gS[i][l] + gS[l][i]) * M[l][j];
        gM[i][j] = acc;
      }
    T gR[3][3];
    for (int j = 0; j < 3; ++j) {
      g_scales[3 * g + j] = gM[0][j] * Rq[0][j] + gM[1][j] * Rq[1][j] + gM[2][j] * Rq[2][j];
      for (int i = 0; i < 3; ++i) gR[i][j] = gM[i][j] * s[j];
    }
    const T w = q_n[0], x = q_n[1], y = q_n[2], z = q_n[3];
    T gq[4];
    gq[0] = 2 * (-z * gR[0][1] + y * gR[0][2] + z * gR[1][0] - x * gR[1][2] - y * gR[2][0] + x * gR[2][1]);
    gq[1] = 2 * (y * gR[0][1] + z * gR[0][2] + y * gR[1][0] - 2 * x * gR[1][1] - w * gR[1][2] + z * gR[2][0] +
                 w * gR[2][1] - 2 * x * gR[2][2]);
    gq[2] = 2 * (-2 * y * gR[0][0] + x * gR[0][1] + w * gR[0][2] + x * gR[1][0] + z * gR[1][2] - w * gR[2][0] +
                 z * gR[2][1] - 2 * y * gR[2][2]);
    gq[3] = 2 * (-2 * z * gR[0][0] - w * gR[0][1] + x * gR[0][2] + w * gR[1][0] - 2 * z * gR[1][1] +
                 y * gR[1][2] + x * gR[2][0] + y * gR[2][1]);
    // q_n = q / max(|q|, 1e-12)
    if (qnorm > (T)1e-12) {
      const T dot = q_n[0] * gq[0] + q_n[1] * gq[1] + q_n[2] * gq[2] + q_n[3] * gq[3];
      for (int i = 0; i < 4; ++i) g_quats[4 * g + i] = (gq[i] - q_n[i] * dot) / qnorm;
    } else {
      for (int i = 0; i < 4; ++i) g_quats[4 * g + i] = gq[i] / (T)1e-12;
    }
  }
}

void check(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
}

}  // namespace

// means [N,3], quats [N,4] (w,x,y,z, any norm), scales [N,3] (activated), viewmats [C,4,4],
// Ks [C,3,3], one floating dtype. Returns means2d [C,N,2], depths [C,N], conics [C,N,3] and the
// dilated 2D covariance's (a, b, c) [C,N,3].
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                           torch::Tensor viewmats, torch::Tensor Ks, int64_t W, int64_t H,
                                           double eps2d) {
  for (auto* p : {&means, &quats, &scales, &viewmats, &Ks}) check(*p, "input");
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto opts = means.options();
  auto means2d = torch::empty({C, N, 2}, opts);
  auto depths = torch::empty({C, N}, opts);
  auto conics = torch::empty({C, N, 3}, opts);
  auto cov2d = torch::empty({C, N, 3}, opts);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    forward_impl<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
                           viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), C, N, W, H, (scalar_t)eps2d,
                           means2d.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                           cov2d.data_ptr<scalar_t>());
  });
  return {means2d, depths, conics, cov2d};
}

std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                            torch::Tensor viewmats, torch::Tensor Ks, int64_t W, int64_t H,
                                            double eps2d, torch::Tensor g_means2d, torch::Tensor g_depths,
                                            torch::Tensor g_conics) {
  for (auto* p : {&means, &quats, &scales, &viewmats, &Ks, &g_means2d, &g_depths, &g_conics}) check(*p, "input");
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto g_means = torch::zeros_like(means);
  auto g_quats = torch::zeros_like(quats);
  auto g_scales = torch::zeros_like(scales);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_backward", [&] {
    backward_impl<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
                            viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), C, N, W, H, (scalar_t)eps2d,
                            g_means2d.data_ptr<scalar_t>(), g_depths.data_ptr<scalar_t>(),
                            g_conics.data_ptr<scalar_t>(), g_means.data_ptr<scalar_t>(),
                            g_quats.data_ptr<scalar_t>(), g_scales.data_ptr<scalar_t>());
  });
  return {g_means, g_quats, g_scales};
}
