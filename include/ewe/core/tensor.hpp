// Shape, TensorView (non-owning) and Tensor (owning) for float and double data on a
// Device. Layout is row-major; images are NHWC (batch, height, width, channels), the
// channels_last layout of Keras, and matrices are (rows, columns).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <algorithm>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "ewe/core/cuda_loader.hpp"
#include "ewe/core/device.hpp"
#include "ewe/core/error.hpp"

namespace ewe {

// Dimensions as ewe's messages print every shape, Python's tuple style: "(784, 32)",
// "(7,)", "()". Shape::str and the checkpoint/file readers all use it.
inline std::string shape_text(const std::int64_t* dims, std::size_t rank) {
    std::string s = "(";
    for (std::size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (rank == 1 ? ",)" : ")");
}

// Up to six dimensions; a rank-0 shape has one element.
class Shape {
public:
    static constexpr int kMaxRank = 6;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims) {
        EWE_REQUIRE(dims.size() <= kMaxRank, "Shape: at most ", kMaxRank, " dimensions, found ", dims.size());
        for (std::int64_t d : dims) push_back(d);
    }

    void push_back(std::int64_t d) {
        EWE_REQUIRE(rank_ < kMaxRank, "Shape: at most ", kMaxRank, " dimensions");
        EWE_REQUIRE(d >= 0, "Shape: dimensions must be non-negative, found ", d);
        dims_[rank_++] = d;
    }
    int rank() const { return rank_; }
    std::int64_t operator[](int i) const { return dims_[i]; }
    std::int64_t& operator[](int i) { return dims_[i]; }
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (int i = 0; i < rank_; ++i) {
            EWE_REQUIRE(dims_[i] == 0 || n <= std::numeric_limits<std::int64_t>::max() / dims_[i], "Shape ", str(),
                        ": the element count overflows int64");
            n *= dims_[i];
        }
        return n;
    }
    // This shape with a leading (batch) dimension prepended: features().with_batch(n)
    // replaces the batch dimension.
    Shape with_batch(std::int64_t batch) const {
        Shape out;
        out.push_back(batch);
        for (int i = 0; i < rank_; ++i) out.push_back(dims_[i]);
        return out;
    }
    // All dimensions but the first.
    Shape features() const {
        Shape out;
        for (int i = 1; i < rank_; ++i) out.push_back(dims_[i]);
        return out;
    }
    bool operator==(const Shape& other) const {
        if (rank_ != other.rank_) return false;
        for (int i = 0; i < rank_; ++i)
            if (dims_[i] != other.dims_[i]) return false;
        return true;
    }
    bool operator!=(const Shape& other) const { return !(*this == other); }
    std::string str() const { return shape_text(dims_.data(), static_cast<std::size_t>(rank_)); }

private:
    std::array<std::int64_t, kMaxRank> dims_{};
    int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& out, const Shape& shape) { return out << shape.str(); }

// A pointer, a shape and the device the pointer lives on. Cheap to copy; converts
// from TensorView<T> to TensorView<const T>. An empty view (data() == nullptr) stands
// for an absent optional argument.
template <class T>
class TensorView {
public:
    TensorView() = default;
    TensorView(T* data, Shape shape, Device device = Device::cpu) : data_(data), shape_(shape), device_(device) {}
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    TensorView(const TensorView<U>& other) : data_(other.data()), shape_(other.shape()), device_(other.device()) {}

    T* data() const { return data_; }
    const Shape& shape() const { return shape_; }
    Device device() const { return device_; }
    std::int64_t numel() const { return shape_.numel(); }
    std::int64_t dim(int i) const { return shape_[i]; }
    int rank() const { return shape_.rank(); }
    bool empty() const { return data_ == nullptr; }
    T& operator[](std::int64_t i) const { return data_[i]; }

    // The same memory seen with another shape of equal element count.
    TensorView reshaped(const Shape& shape) const {
        EWE_REQUIRE(shape.numel() == numel(), "TensorView::reshaped: cannot view ", shape_, " as ", shape);
        return TensorView(data_, shape, device_);
    }
    // The first `rows` entries along dimension 0.
    TensorView leading(std::int64_t rows) const {
        EWE_REQUIRE(rank() >= 1 && rows <= dim(0), "TensorView::leading: asked for ", rows, " rows of ", shape_);
        Shape s = shape_;
        s[0] = rows;
        return TensorView(data_, s, device_);
    }
    // A contiguous piece: `count` elements starting at `offset`, shaped `shape`.
    TensorView slice(std::int64_t offset, const Shape& shape) const {
        EWE_REQUIRE(offset >= 0 && offset + shape.numel() <= numel(), "TensorView::slice: [", offset, ", ",
                    offset + shape.numel(), ") is outside a view of ", numel(), " elements");
        return TensorView(data_ + offset, shape, device_);
    }

private:
    T* data_ = nullptr;
    Shape shape_;
    Device device_ = Device::cpu;
};

namespace detail {

// The CUDA backend's memory hooks (ewe/core/cuda_hooks.hpp), loading the backend
// module first if no backend is installed yet; `what` names the caller in the error.
inline const CudaMemoryHooks& require_cuda(const char* what) {
    const CudaMemoryHooks* hooks = cuda_memory_hooks();
    if (hooks == nullptr) {
        load_cuda_backend(what);
        hooks = cuda_memory_hooks();
    }
    return *hooks;
}

inline void* allocate_bytes(Device device, std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (device == Device::cuda) return require_cuda("ewe::Tensor").allocate(bytes);
    void* p = ::operator new(bytes, std::align_val_t{64});
    return p;
}

inline void release_bytes(Device device, void* pointer) {
    if (pointer == nullptr) return;
    if (device == Device::cuda) {
        require_cuda("ewe::Tensor").release(pointer);
        return;
    }
    ::operator delete(pointer, std::align_val_t{64});
}

}  // namespace detail

// Copies src into dst (same element count) across any pair of devices.
template <class T>
void copy(TensorView<const T> src, TensorView<T> dst) {
    EWE_REQUIRE(src.numel() == dst.numel(), "ewe::copy: source has ", src.numel(), " elements, destination ",
                dst.numel());
    const std::size_t bytes = static_cast<std::size_t>(src.numel()) * sizeof(T);
    if (bytes == 0) return;
    if (src.device() == Device::cpu && dst.device() == Device::cpu) {
        std::memmove(dst.data(), src.data(), bytes);
        return;
    }
    detail::require_cuda("ewe::copy").copy(dst.data(), dst.device(), src.data(), src.device(), bytes);
}

// Owning, move-only storage for a TensorView. Elements start uninitialized (as
// torch.empty); use from() or fill for defined values.
template <class T>
class Tensor {
public:
    Tensor() = default;
    explicit Tensor(Shape shape, Device device = Device::cpu)
        : data_(static_cast<T*>(detail::allocate_bytes(device, byte_size(shape))),
                Deleter{device}),
          shape_(shape),
          device_(device) {}

    // A host tensor holding a copy of `values` (row-major), shaped `shape`.
    static Tensor from(Shape shape, std::initializer_list<T> values) {
        EWE_REQUIRE(static_cast<std::int64_t>(values.size()) == shape.numel(), "Tensor::from: shape ", shape,
                    " needs ", shape.numel(), " values, found ", values.size());
        Tensor t(shape);
        std::copy(values.begin(), values.end(), t.data());
        return t;
    }

    T* data() const { return data_.get(); }
    const Shape& shape() const { return shape_; }
    Device device() const { return device_; }
    std::int64_t numel() const { return shape_.numel(); }
    std::int64_t dim(int i) const { return shape_[i]; }
    T& operator[](std::int64_t i) const { return data_.get()[i]; }

    TensorView<T> view() const { return TensorView<T>(data_.get(), shape_, device_); }
    operator TensorView<T>() const { return view(); }
    operator TensorView<const T>() const { return view(); }

    // A new tensor on `device` holding a copy of `source` (from either device).
    static Tensor copy_of(TensorView<const T> source, Device device) {
        Tensor out(source.shape(), device);
        copy<T>(source, out.view());
        return out;
    }

    // A copy of this tensor on `device`.
    Tensor to(Device device) const { return copy_of(view(), device); }

private:
    static std::size_t byte_size(const Shape& shape) {
        const auto count = static_cast<std::uint64_t>(shape.numel());
        EWE_REQUIRE(count <= std::numeric_limits<std::size_t>::max() / sizeof(T), "ewe::Tensor: shape ", shape,
                    " needs more bytes than this machine can address");
        return static_cast<std::size_t>(count) * sizeof(T);
    }

    struct Deleter {
        Device device;
        void operator()(T* p) const { detail::release_bytes(device, p); }
    };
    std::unique_ptr<T, Deleter> data_{nullptr, Deleter{Device::cpu}};
    Shape shape_;
    Device device_ = Device::cpu;
};

}  // namespace ewe
