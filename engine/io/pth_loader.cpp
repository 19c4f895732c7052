#include "engine/io/pth_loader.h"

#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "engine/common/dtype.h"
#include "engine/io/zip_archive.h"

namespace rwkv::io {

static_assert(std::endian::native == std::endian::little,
              "checkpoint storages are little-endian; big-endian hosts need byte swaps");

bool is_float_dtype(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kBFloat16;
}

namespace {

uint16_t load_u16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float load_element(DType dtype, const char* p) {
  switch (dtype) {
    case DType::kFloat16:
      return common::half_to_float(load_u16(p));
    case DType::kBFloat16:
      return common::bfloat16_to_float(load_u16(p));
    default: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
  }
}

}  // namespace

void convert_to_float32(DType dtype, const void* src, size_t count, float* dst) {
  if (count == 0) return;  // an empty tensor's dst is null, and memcpy(null, ...) is undefined
  const char* bytes = static_cast<const char*>(src);
  if (dtype == DType::kFloat32) {
    std::memcpy(dst, bytes, count * sizeof(float));
    return;
  }
  for (size_t i = 0; i < count; ++i) dst[i] = load_element(dtype, bytes + 2 * i);
}

namespace {

// Overflow-checked int64 arithmetic for sizes taken from untrusted files.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Hostile pickles can alias one storage from many views; cap the output at a
// few times the storage data (shared views and tied weights stay far below).
constexpr int64_t kAliasFactor = 4;
constexpr int64_t kAliasSlack = int64_t{1} << 20;
constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;

struct TensorPlan {
  std::string name;
  const pickle::Tensor* tensor;
  int64_t numel = 0;
};

struct StoragePlan {
  DType dtype;
  int64_t numel;
  std::string entry;
  std::vector<TensorPlan> tensors;
};

class PthLoader {
 public:
  PthLoader(const ZipArchive& zip, const std::string& name) : zip_(zip), name_(name) {}
  Checkpoint run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError(name_ + ": " + what);
  }
  std::string find_prefix() const;
  void check_byte_order() const;
  void collect(const pickle::Value& root);
  void plan_storages();
  void plan_tensor(StoragePlan& storage, TensorPlan& plan) const;
  void load_storage(const StoragePlan& storage);
  void load_single_in_place(const StoragePlan& storage, const TensorPlan& plan);
  HostTensor gather(const std::string& bytes, DType dtype, const TensorPlan& plan) const;

  const ZipArchive& zip_;
  std::string name_;
  std::string prefix_;
  std::map<std::string, const pickle::Tensor*> tensor_refs_;
  std::map<std::string, StoragePlan> storages_;
  Checkpoint out_;
};

Checkpoint PthLoader::run() {
  out_.path = name_;
  prefix_ = find_prefix();
  check_byte_order();
  const std::string program = zip_.read(prefix_ + "data.pkl", kMaxPickleBytes);
  pickle::Unpickler unpickler(program);
  collect(unpickler.load());
  plan_storages();  // validates everything before the (large) reads
  for (const auto& [key, storage] : storages_) load_storage(storage);
  return std::move(out_);
}

// torch.save writes `<prefix>/data.pkl` with one path component of prefix.
std::string PthLoader::find_prefix() const {
  std::vector<std::string> found;
  for (const std::string& entry : zip_.names()) {
    if (entry == "data.pkl") found.push_back("");
    constexpr std::string_view kSuffix = "/data.pkl";
    if (entry.size() > kSuffix.size() && entry.ends_with(kSuffix)) {
      const std::string prefix = entry.substr(0, entry.size() - kSuffix.size() + 1);
      if (prefix.find('/') == prefix.size() - 1) found.push_back(prefix);
    }
  }
  if (found.empty()) fail("not a PyTorch checkpoint: no <prefix>/data.pkl in the zip");
  if (found.size() > 1)
    fail("ambiguous: " + std::to_string(found.size()) + " data.pkl records ('" + found[0] +
         "data.pkl', '" + found[1] + "data.pkl', ...)");
  return found[0];
}

void PthLoader::check_byte_order() const {
  const std::string record = prefix_ + "byteorder";
  if (!zip_.contains(record)) return;  // older writers: always little-endian
  const std::string order = zip_.read(record, 64);
  if (order != "little") fail("unsupported byte order '" + order + "' (only little-endian)");
}

void PthLoader::collect(const pickle::Value& root) {
  const auto* dict = std::get_if<pickle::Dict>(&root.v);
  if (!dict)
    fail("top-level object has type " + pickle::kind_name(root) + ", expected a dict of tensors");
  for (const auto& [key, value] : dict->items) {
    const auto* name = std::get_if<std::string>(&key->v);
    if (!name) fail("top-level key has type " + pickle::kind_name(*key) + ", expected a string");
    // A repeated key replaces the earlier value, as in Python.
    tensor_refs_.erase(*name);
    out_.int_lists.erase(*name);
    if (const auto* tensor = std::get_if<pickle::Tensor>(&value->v)) {
      tensor_refs_[*name] = tensor;
      continue;
    }
    const std::vector<pickle::Value*>* items = nullptr;
    if (const auto* list = std::get_if<pickle::List>(&value->v)) items = &list->items;
    if (const auto* tuple = std::get_if<pickle::Tuple>(&value->v)) items = &tuple->items;
    if (!items) continue;  // other non-tensor values are not needed
    std::vector<int64_t> ints;
    for (const pickle::Value* item : *items) {
      const auto* i = std::get_if<int64_t>(&item->v);
      if (!i) break;
      ints.push_back(*i);
    }
    if (ints.size() == items->size()) out_.int_lists[*name] = std::move(ints);
  }
}

void PthLoader::plan_storages() {
  for (const auto& [name, tensor] : tensor_refs_) {
    const pickle::Storage& s = tensor->storage;
    auto [it, inserted] = storages_.try_emplace(s.key);
    StoragePlan& storage = it->second;
    const std::string entry = prefix_ + "data/" + s.key;
    if (inserted) {
      storage = StoragePlan{s.dtype, s.numel, entry, {}};
    } else if (storage.dtype != s.dtype || storage.numel != s.numel) {
      fail("storage '" + s.key + "' is declared with two different dtypes or sizes");
    }
    if (!is_float_dtype(s.dtype))
      fail("tensor '" + name + "' has unsupported dtype " + dtype_name(s.dtype) +
           " (supported: float32, float16, bfloat16)");
    storage.tensors.push_back(TensorPlan{name, tensor});
  }
  int64_t storage_elements = 0;
  int64_t output_elements = 0;
  for (auto& [key, storage] : storages_) {
    if (!zip_.contains(storage.entry)) fail("storage record '" + storage.entry + "' is missing");
    const auto bytes = checked_mul(storage.numel, static_cast<int64_t>(dtype_size(storage.dtype)));
    const uint64_t actual = zip_.size(storage.entry);
    if (!bytes || static_cast<uint64_t>(*bytes) != actual)
      fail("storage '" + storage.entry + "' has " + std::to_string(actual) + " bytes but " +
           std::to_string(storage.numel) + " " + dtype_name(storage.dtype) +
           " elements are declared");
    const auto total = checked_add(storage_elements, storage.numel);
    if (!total) fail("storages hold too many elements");
    storage_elements = *total;
    for (TensorPlan& plan : storage.tensors) {
      plan_tensor(storage, plan);
      const auto sum = checked_add(output_elements, plan.numel);
      if (!sum) fail("tensors hold too many elements");
      output_elements = *sum;
    }
  }
  const auto scaled = checked_mul(storage_elements, kAliasFactor);
  const auto budget = scaled ? checked_add(*scaled, kAliasSlack) : std::nullopt;
  if (budget && output_elements > *budget)
    fail("tensors address " + std::to_string(output_elements) + " elements, far more than their " +
         "storages hold (" + std::to_string(storage_elements) + "): too many overlapping views");
}

// Checks that every element the view addresses lies inside its storage.
void PthLoader::plan_tensor(StoragePlan& storage, TensorPlan& plan) const {
  const pickle::Tensor& t = *plan.tensor;
  int64_t numel = 1;
  int64_t last = t.storage_offset;  // highest element index addressed
  for (size_t d = 0; d < t.size.size(); ++d) {
    const auto n = checked_mul(numel, t.size[d]);
    const auto reach = checked_mul(t.size[d] > 0 ? t.size[d] - 1 : 0, t.stride[d]);
    const auto next = reach ? checked_add(last, *reach) : std::nullopt;
    if (!n || !next) fail("tensor '" + plan.name + "' has a size or stride that overflows");
    numel = *n;
    last = *next;
  }
  plan.numel = numel;
  if (numel > 0 && last >= storage.numel) {
    const int64_t esz = static_cast<int64_t>(dtype_size(storage.dtype));
    const std::string needed =
        (last < INT64_MAX / esz - 1) ? std::to_string((last + 1) * esz) : std::string("more");
    fail("tensor '" + plan.name + "' storage '" + storage.entry + "' has " +
         std::to_string(storage.numel * esz) + " bytes but offset+extent needs " + needed);
  }
}

void PthLoader::load_storage(const StoragePlan& storage) {
  if (storage.tensors.size() == 1) {
    const TensorPlan& plan = storage.tensors[0];
    const pickle::Tensor& t = *plan.tensor;
    bool contiguous = t.storage_offset == 0 && plan.numel == storage.numel;
    int64_t expected_stride = 1;
    for (size_t d = t.size.size(); d-- > 0;) {
      if (t.size[d] != 1 && t.stride[d] != expected_stride) contiguous = false;
      expected_stride *= t.size[d];
    }
    if (contiguous) {
      load_single_in_place(storage, plan);
      return;
    }
  }
  // Shared or strided storages: read once, gather every view from it.
  const uint64_t bytes = static_cast<uint64_t>(storage.numel) * dtype_size(storage.dtype);
  const std::string data = zip_.read(storage.entry, bytes);
  for (const TensorPlan& plan : storage.tensors)
    out_.tensors[plan.name] = gather(data, storage.dtype, plan);
}

// The common case: the storage is exactly one dense tensor, so read it
// straight into the output buffer and widen 16-bit elements in place.
void PthLoader::load_single_in_place(const StoragePlan& storage, const TensorPlan& plan) {
  HostTensor& out = out_.tensors[plan.name];
  out.shape = plan.tensor->size;
  out.data.resize(static_cast<size_t>(plan.numel));
  const size_t esz = dtype_size(storage.dtype);
  zip_.read_into(storage.entry, out.data.data(), out.data.size() * esz);
  if (esz == sizeof(float)) return;
  // Back to front: element i's 2 source bytes sit below its 4 output bytes.
  char* raw = reinterpret_cast<char*>(out.data.data());
  for (size_t i = out.data.size(); i-- > 0;) {
    const float v = load_element(storage.dtype, raw + 2 * i);
    std::memcpy(raw + 4 * i, &v, sizeof v);
  }
}

HostTensor PthLoader::gather(const std::string& bytes, DType dtype, const TensorPlan& plan) const {
  const pickle::Tensor& t = *plan.tensor;
  HostTensor out{t.size, std::vector<float>(static_cast<size_t>(plan.numel))};
  if (plan.numel == 0) return out;
  const size_t esz = dtype_size(dtype);
  // Unit dimensions may carry any stride; zero them so stepping cannot overflow.
  std::vector<int64_t> stride = t.stride;
  for (size_t d = 0; d < stride.size(); ++d)
    if (t.size[d] == 1) stride[d] = 0;
  const size_t ndim = t.size.size();
  const int64_t inner = ndim ? t.size.back() : 1;
  const int64_t inner_stride = ndim ? stride.back() : 1;
  std::vector<int64_t> index(ndim, 0);
  int64_t src = t.storage_offset;  // element index of the current row's start
  float* dst = out.data.data();
  for (int64_t row = 0; row < plan.numel / inner; ++row) {
    if (inner_stride == 1) {
      convert_to_float32(dtype, bytes.data() + src * esz, static_cast<size_t>(inner), dst);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        dst[i] = load_element(dtype, bytes.data() + (src + i * inner_stride) * esz);
    }
    dst += inner;
    // Odometer over the outer dimensions.
    for (size_t d = ndim > 0 ? ndim - 1 : 0; d-- > 0;) {
      src += stride[d];
      if (++index[d] < t.size[d]) break;
      src -= stride[d] * t.size[d];
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

Checkpoint load_pth(const ZipArchive& zip, const std::string& name) {
  try {
    return PthLoader(zip, name).run();
  } catch (const ZipError& e) {
    throw CheckpointError(name + ": " + e.what());
  } catch (const PickleError& e) {
    throw CheckpointError(name + ": " + e.what());
  }
}

}  // namespace rwkv::io
