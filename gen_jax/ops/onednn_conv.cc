// oneDNN 2-D convolutions as XLA FFI handlers, for gen_jax on XLA:CPU.
//
// Three handlers, all float32, channels-last: activations NHWC, kernels HWIO
// (JAX's layouts), explicit strides and (low, high) padding, no dilation:
//
//   gen_jax_onednn_conv_forward(x, w) -> y
//   gen_jax_onednn_conv_backward_data(g, w) -> dx      (dx has x's shape)
//   gen_jax_onednn_conv_backward_weights(x, g) -> dw   (dw has w's shape)
//
// Why: for small feature maps oneDNN skips the taps that fall on padding,
// which XLA's Eigen convolutions compute as zeros. Primitives are built once
// per shape and cached; kernels are reordered to oneDNN's preferred layout
// on each call (they are small).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One convolution problem, in oneDNN's terms.
struct Problem {
  int64_t n, h, w, c;     // input
  int64_t kh, kw, o;      // kernel
  int64_t oh, ow;         // output
  int64_t sh, sw;         // strides
  int64_t pt, pb, pl, pr; // padding

  auto Key() const {
    return std::make_tuple(n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr);
  }
  memory::desc Input() const { return Desc({n, c, h, w}, Tag::nhwc); }
  memory::desc Output() const { return Desc({n, o, oh, ow}, Tag::nhwc); }
  memory::desc Kernel(Tag tag) const { return Desc({o, c, kh, kw}, tag); }
  memory::dims Strides() const { return {sh, sw}; }
  memory::dims PadLow() const { return {pt, pl}; }
  memory::dims PadHigh() const { return {pb, pr}; }

  static memory::desc Desc(memory::dims dims, Tag tag) {
    return memory::desc(dims, memory::data_type::f32, tag);
  }
};

dnnl::convolution_forward::primitive_desc ForwardDesc(const Problem& p) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      p.Input(), p.Kernel(Tag::any), p.Output(), p.Strides(), p.PadLow(), p.PadHigh());
}

struct Forward {
  explicit Forward(const Problem& p) : desc(ForwardDesc(p)), primitive(desc) {}
  dnnl::convolution_forward::primitive_desc desc;
  dnnl::convolution_forward primitive;
};

struct BackwardData {
  explicit BackwardData(const Problem& p)
      : desc(Engine(), dnnl::algorithm::convolution_direct, p.Input(), p.Kernel(Tag::any),
             p.Output(), p.Strides(), p.PadLow(), p.PadHigh(), ForwardDesc(p)),
        primitive(desc) {}
  dnnl::convolution_backward_data::primitive_desc desc;
  dnnl::convolution_backward_data primitive;
};

struct BackwardWeights {
  explicit BackwardWeights(const Problem& p)
      : desc(Engine(), dnnl::algorithm::convolution_direct, p.Input(), p.Kernel(Tag::any),
             p.Output(), p.Strides(), p.PadLow(), p.PadHigh(), ForwardDesc(p)),
        primitive(desc) {}
  dnnl::convolution_backward_weights::primitive_desc desc;
  dnnl::convolution_backward_weights primitive;
};

// The primitive for a problem, built on first use. Primitives may be executed
// from several threads at once.
template <typename T>
const T& Cached(const Problem& p) {
  static std::mutex mutex;
  static std::map<decltype(p.Key()), std::unique_ptr<T>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[p.Key()];
  if (!entry) entry = std::make_unique<T>(p);
  return *entry;
}

// XLA runs independent custom calls on several of its threads at once. Each
// oneDNN call already uses every core through OpenMP, and concurrent calls
// from two threads livelocked here (oneDNN 3.2, GNU OpenMP: the WGAN step
// never finished, one thread spinning), so calls take turns.
std::mutex& ExecutionMutex() {
  static std::mutex mutex;
  return mutex;
}

void Reorder(const memory& from, const memory& to) {
  std::lock_guard<std::mutex> lock(ExecutionMutex());
  dnnl::stream stream(Engine());
  dnnl::reorder(from, to).execute(stream, const_cast<memory&>(from), const_cast<memory&>(to));
  stream.wait();
}

// The HWIO kernel buffer `data` as memory in layout `want`: the buffer itself,
// or `scratch` when oneDNN wants another layout (the caller reorders).
memory KernelMemory(const Problem& p, const memory::desc& want, void* data,
                    std::vector<float>& scratch) {
  if (want == p.Kernel(Tag::hwio)) return memory(want, Engine(), data);
  scratch.resize(want.get_size() / sizeof(float));
  return memory(want, Engine(), scratch.data());
}

void Execute(const dnnl::primitive& primitive, const std::unordered_map<int, memory>& args) {
  std::lock_guard<std::mutex> lock(ExecutionMutex());
  dnnl::stream stream(Engine());
  primitive.execute(stream, args);
  stream.wait();
}

using F32 = ffi::Buffer<ffi::F32>;
using Result = ffi::ResultBuffer<ffi::F32>;

// Checks the ranks, describes the problem from buffers shaped like the input
// x [N, H, W, C], the kernel w [KH, KW, C, O] and the output y [N, OH, OW, O],
// runs `body(problem)` and turns oneDNN's errors into FFI errors.
template <typename X, typename W, typename Y, typename Body>
ffi::Error Convolution(const X& x, const W& w, const Y& y, int64_t sh, int64_t sw, int64_t pt,
                       int64_t pb, int64_t pl, int64_t pr, Body body) {
  auto xd = x.dimensions(), wd = w.dimensions(), yd = y.dimensions();
  if (xd.size() != 4 || wd.size() != 4 || yd.size() != 4) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "gen_jax oneDNN convolution: operands must be rank 4 (NHWC, HWIO)");
  }
  try {
    body(Problem{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2],
                 sh, sw, pt, pb, pl, pr});
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("gen_jax oneDNN convolution: ") + e.what());
  }
  return ffi::Error::Success();
}

// Forward (x -> y) and backward data (g -> dx): an activation in, the kernel,
// an activation out, both activations NHWC as the primitive was built.
template <typename Op>
void WithKernelIn(const Problem& p, const memory::desc& in_desc, int in_arg, void* in,
                  void* kernel, const memory::desc& out_desc, int out_arg, void* out) {
  const auto& op = Cached<Op>(p);
  std::vector<float> scratch;
  memory user(p.Kernel(Tag::hwio), Engine(), kernel);
  memory packed = KernelMemory(p, op.desc.weights_desc(), kernel, scratch);
  if (!(packed == user)) Reorder(user, packed);
  Execute(op.primitive, {{in_arg, memory(in_desc, Engine(), in)},
                         {DNNL_ARG_WEIGHTS, packed},
                         {out_arg, memory(out_desc, Engine(), out)}});
}

ffi::Error ConvForward(F32 x, F32 w, Result y, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
                       int64_t pl, int64_t pr) {
  return Convolution(x, w, *y, sh, sw, pt, pb, pl, pr, [&](const Problem& p) {
    WithKernelIn<Forward>(p, p.Input(), DNNL_ARG_SRC, x.untyped_data(), w.untyped_data(),
                          p.Output(), DNNL_ARG_DST, y->untyped_data());
  });
}

ffi::Error ConvBackwardData(F32 g, F32 w, Result dx, int64_t sh, int64_t sw, int64_t pt,
                            int64_t pb, int64_t pl, int64_t pr) {
  return Convolution(*dx, w, g, sh, sw, pt, pb, pl, pr, [&](const Problem& p) {
    WithKernelIn<BackwardData>(p, p.Output(), DNNL_ARG_DIFF_DST, g.untyped_data(),
                               w.untyped_data(), p.Input(), DNNL_ARG_DIFF_SRC,
                               dx->untyped_data());
  });
}

ffi::Error ConvBackwardWeights(F32 x, F32 g, Result dw, int64_t sh, int64_t sw, int64_t pt,
                               int64_t pb, int64_t pl, int64_t pr) {
  return Convolution(x, *dw, g, sh, sw, pt, pb, pl, pr, [&](const Problem& p) {
    const auto& op = Cached<BackwardWeights>(p);
    std::vector<float> scratch;
    memory user(p.Kernel(Tag::hwio), Engine(), dw->untyped_data());
    memory packed = KernelMemory(p, op.desc.diff_weights_desc(), dw->untyped_data(), scratch);
    Execute(op.primitive, {{DNNL_ARG_SRC, memory(p.Input(), Engine(), x.untyped_data())},
                           {DNNL_ARG_DIFF_DST, memory(p.Output(), Engine(), g.untyped_data())},
                           {DNNL_ARG_DIFF_WEIGHTS, packed}});
    if (!(packed == user)) Reorder(packed, user);
  });
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<F32>()
      .Arg<F32>()
      .Ret<F32>()
      .Attr<int64_t>("stride_h")
      .Attr<int64_t>("stride_w")
      .Attr<int64_t>("pad_top")
      .Attr<int64_t>("pad_bottom")
      .Attr<int64_t>("pad_left")
      .Attr<int64_t>("pad_right");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxOnednnConvForward, ConvForward, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxOnednnConvBackwardData, ConvBackwardData, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxOnednnConvBackwardWeights, ConvBackwardWeights, Binding());
