// A whitelisting pickle virtual machine for the subset of the pickle format
// that torch.save writes (protocol 2, plus a few later opcodes).
//
// It never imports or calls anything: GLOBAL only resolves a fixed list of
// names (OrderedDict, torch's tensor rebuild functions and storage types), and
// REDUCE only "calls" those, producing plain Values. Hostile input gives a
// PickleError: every read is bounds-checked, and the stack, memo, number of
// values and container sizes are capped. The VM is iterative and values live in
// an arena, so neither deep nesting nor reference cycles can exhaust the C++
// stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace rwkv::io {

class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Element types a torch storage may have. Only the float ones can be loaded;
// the others are recognised so that errors can name them.
enum class DType {
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool
};

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

namespace pickle {

struct Value;

struct None {};
struct Tuple {
  std::vector<Value*> items;
};
struct List {
  std::vector<Value*> items;
};
// Insertion order is kept; a repeated key appears twice (the later one wins,
// as in Python).
struct Dict {
  std::vector<std::pair<Value*, Value*>> items;
};

// A whitelisted global, the only kind of callable the VM knows.
struct Global {
  enum class Kind { kOrderedDict, kRebuildTensorV2, kRebuildParameter, kStorageType };
  Kind kind;
  DType dtype = DType::kFloat32;  // for kStorageType
  std::string qualified_name;     // "module.name", for messages
};

// persistent_id(('storage', <dtype>Storage, key, location, numel)).
struct Storage {
  DType dtype;
  std::string key;
  std::string location;
  int64_t numel;
};

// _rebuild_tensor_v2(storage, storage_offset, size, stride, ...). Sizes,
// strides and the offset are non-negative; bounds against the storage are
// the caller's job.
struct Tensor {
  Storage storage;
  int64_t storage_offset;
  std::vector<int64_t> size;
  std::vector<int64_t> stride;
};

struct Value {
  std::variant<None, bool, int64_t, double, std::string, Tuple, List, Dict, Global, Storage, Tensor>
      v;
};

// A short type name ("int", "list", "tensor", ...) for error messages.
std::string kind_name(const Value& value);

struct Limits {
  size_t max_stack = size_t{1} << 20;
  size_t max_marks = size_t{1} << 16;
  size_t max_memo = size_t{1} << 20;
  size_t max_values = size_t{1} << 22;
  size_t max_container = size_t{1} << 22;
  size_t max_ndim = 64;
};

class Unpickler {
 public:
  // `data` must outlive the Unpickler.
  explicit Unpickler(std::string_view data, Limits limits = {});

  // Runs the program to STOP. The result, and everything it points to, lives
  // as long as this Unpickler. Throws PickleError.
  const Value& load();

 private:
  // Input.
  uint8_t read_u8();
  uint64_t read_le(size_t bytes);
  std::string_view read_bytes(uint64_t n);
  std::string_view read_line();

  // Values and stack.
  Value* make(Value value);
  void push(Value* value);
  Value* pop();
  Value* top();
  std::vector<Value*> pop_mark();
  size_t stack_floor() const;

  // Opcode groups.
  void execute(uint8_t op);
  void put_memo(uint64_t index);
  Value* get_memo(uint64_t index);
  void push_global(std::string_view module, std::string_view name);
  void reduce(const Global& callable, const Tuple& args);
  void build_tensor(const Tuple& args);
  void persistent_load(const Value& pid);
  void append_items(const std::vector<Value*>& items);
  void set_items(const std::vector<Value*>& items);
  void check_container(size_t size) const;

  [[noreturn]] void fail(const std::string& what) const;

  std::string_view data_;
  Limits limits_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  std::deque<Value> arena_;  // stable addresses; freed without recursion
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

}  // namespace pickle
}  // namespace rwkv::io
