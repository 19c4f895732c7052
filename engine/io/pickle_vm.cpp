#include "engine/io/pickle_vm.h"

#include <array>
#include <bit>
#include <cstdio>

namespace rwkv::io {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat64:
      return "float64";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kInt16:
      return "int16";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kBool:
      return "bool";
  }
  return "unknown";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
      return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
      return 1;
  }
  return 1;
}

namespace pickle {
namespace {

// Opcodes, named as in CPython's pickletools.
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinFloat = 'G',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

constexpr size_t kMaxGlobalNameLength = 256;
constexpr int kHighestProtocol = 5;

struct StorageName {
  const char* name;
  DType dtype;
};
constexpr std::array<StorageName, 10> kStorageTypes = {{
    {"FloatStorage", DType::kFloat32},
    {"HalfStorage", DType::kFloat16},
    {"BFloat16Storage", DType::kBFloat16},
    {"DoubleStorage", DType::kFloat64},
    {"LongStorage", DType::kInt64},
    {"IntStorage", DType::kInt32},
    {"ShortStorage", DType::kInt16},
    {"CharStorage", DType::kInt8},
    {"ByteStorage", DType::kUInt8},
    {"BoolStorage", DType::kBool},
}};

std::string hex_byte(uint8_t byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", byte);
  return buf;
}

template <typename T>
const T* get(const Value* value) {
  return std::get_if<T>(&value->v);
}

}  // namespace

std::string kind_name(const Value& value) {
  static constexpr std::array<const char*, 11> kNames = {"None",   "bool",    "int",   "float",
                                                         "str",    "tuple",   "list",  "dict",
                                                         "global", "storage", "tensor"};
  static_assert(std::variant_size_v<decltype(Value::v)> == kNames.size());
  return kNames[value.v.index()];
}

Unpickler::Unpickler(std::string_view data, Limits limits) : data_(data), limits_(limits) {}

void Unpickler::fail(const std::string& what) const {
  throw PickleError("pickle: " + what + " (opcode at offset " + std::to_string(op_offset_) + ")");
}

// ---- input ------------------------------------------------------------------

uint8_t Unpickler::read_u8() {
  if (pos_ >= data_.size()) fail("unexpected end of data");
  return static_cast<uint8_t>(data_[pos_++]);
}

uint64_t Unpickler::read_le(size_t bytes) {
  const std::string_view raw = read_bytes(bytes);
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(raw[i])} << (8 * i);
  return v;
}

std::string_view Unpickler::read_bytes(uint64_t n) {
  if (n > data_.size() - pos_) fail("length " + std::to_string(n) + " runs past the end of data");
  const std::string_view out = data_.substr(pos_, n);
  pos_ += n;
  return out;
}

std::string_view Unpickler::read_line() {
  const size_t end = data_.find('\n', pos_);
  if (end == std::string_view::npos || end - pos_ > kMaxGlobalNameLength)
    fail("unterminated or overlong GLOBAL name");
  const std::string_view line = data_.substr(pos_, end - pos_);
  pos_ = end + 1;
  return line;
}

// ---- values and stack ---------------------------------------------------------

Value* Unpickler::make(Value value) {
  if (arena_.size() >= limits_.max_values) fail("too many values");
  return &arena_.emplace_back(std::move(value));
}

void Unpickler::push(Value* value) {
  if (stack_.size() >= limits_.max_stack) fail("stack too deep");
  stack_.push_back(value);
}

// Pickle cannot reach below the innermost MARK (CPython keeps a separate
// stack per mark), so that is the floor for pop/top.
size_t Unpickler::stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }

Value* Unpickler::pop() {
  if (stack_.size() <= stack_floor()) fail("stack underflow");
  Value* value = stack_.back();
  stack_.pop_back();
  return value;
}

Value* Unpickler::top() {
  if (stack_.size() <= stack_floor()) fail("stack underflow");
  return stack_.back();
}

std::vector<Value*> Unpickler::pop_mark() {
  if (marks_.empty()) fail("no MARK on the stack");
  const size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
  stack_.resize(mark);
  return items;
}

void Unpickler::check_container(size_t size) const {
  if (size > limits_.max_container) fail("container too large");
}

void Unpickler::put_memo(uint64_t index) {
  Value* value = top();
  if (memo_.size() >= limits_.max_memo && !memo_.count(index)) fail("memo too large");
  memo_[index] = value;
}

Value* Unpickler::get_memo(uint64_t index) {
  const auto it = memo_.find(index);
  if (it == memo_.end()) fail("memo key " + std::to_string(index) + " not found");
  return it->second;
}

// ---- globals and calls ----------------------------------------------------------

void Unpickler::push_global(std::string_view module, std::string_view name) {
  const std::string qualified = std::string(module) + "." + std::string(name);
  Global global{Global::Kind::kOrderedDict, DType::kFloat32, qualified};
  if (module == "collections" && name == "OrderedDict") {
    global.kind = Global::Kind::kOrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    global.kind = Global::Kind::kRebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    global.kind = Global::Kind::kRebuildParameter;
  } else {
    bool found = false;
    for (const StorageName& storage : kStorageTypes) {
      if (module == "torch" && name == storage.name) {
        global.kind = Global::Kind::kStorageType;
        global.dtype = storage.dtype;
        found = true;
      }
    }
    if (!found) fail("global '" + qualified + "' is not allowed");
  }
  push(make(Value{std::move(global)}));
}

void Unpickler::reduce(const Global& callable, const Tuple& args) {
  switch (callable.kind) {
    case Global::Kind::kOrderedDict:
      if (!args.items.empty()) fail("OrderedDict called with arguments");
      push(make(Value{Dict{}}));
      return;
    case Global::Kind::kRebuildTensorV2:
      build_tensor(args);
      return;
    case Global::Kind::kRebuildParameter:
      // (data, requires_grad, backward_hooks): the parameter is its data.
      if (args.items.size() != 3 || !get<Tensor>(args.items[0]))
        fail("_rebuild_parameter expects (tensor, requires_grad, hooks)");
      push(args.items[0]);
      return;
    case Global::Kind::kStorageType:
      break;
  }
  fail("'" + callable.qualified_name + "' is not callable");
}

void Unpickler::build_tensor(const Tuple& args) {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  const auto& a = args.items;
  if (a.size() != 6 && a.size() != 7) fail("_rebuild_tensor_v2 expects 6 or 7 arguments");
  const Storage* storage = get<Storage>(a[0]);
  const int64_t* offset = get<int64_t>(a[1]);
  const Tuple* size = get<Tuple>(a[2]);
  const Tuple* stride = get<Tuple>(a[3]);
  if (!storage || !offset || !size || !stride)
    fail("_rebuild_tensor_v2 expects (storage, int, tuple, tuple, ...)");
  if (*offset < 0) fail("negative storage offset");
  if (size->items.size() != stride->items.size())
    fail("tensor size and stride have different lengths");
  if (size->items.size() > limits_.max_ndim) fail("tensor has too many dimensions");
  Tensor tensor{*storage, *offset, {}, {}};
  for (size_t d = 0; d < size->items.size(); ++d) {
    const int64_t* n = get<int64_t>(size->items[d]);
    const int64_t* s = get<int64_t>(stride->items[d]);
    if (!n || !s || *n < 0 || *s < 0) fail("tensor size/stride must be non-negative ints");
    tensor.size.push_back(*n);
    tensor.stride.push_back(*s);
  }
  push(make(Value{std::move(tensor)}));
}

void Unpickler::persistent_load(const Value& pid) {
  const Tuple* t = std::get_if<Tuple>(&pid.v);
  if (!t || t->items.size() != 5) fail("persistent id is not a 5-tuple");
  const std::string* tag = get<std::string>(t->items[0]);
  const Global* type = get<Global>(t->items[1]);
  const std::string* key = get<std::string>(t->items[2]);
  const std::string* location = get<std::string>(t->items[3]);
  const int64_t* numel = get<int64_t>(t->items[4]);
  if (!tag || *tag != "storage") fail("persistent id is not a ('storage', ...) record");
  if (!type || type->kind != Global::Kind::kStorageType) fail("persistent id has no storage type");
  if (!key || !location || !numel || *numel < 0) fail("malformed storage record");
  push(make(Value{Storage{type->dtype, *key, *location, *numel}}));
}

// ---- containers -------------------------------------------------------------------

void Unpickler::append_items(const std::vector<Value*>& items) {
  List* list = std::get_if<List>(&top()->v);
  if (!list) fail("APPEND to a " + kind_name(*top()));
  check_container(list->items.size() + items.size());
  list->items.insert(list->items.end(), items.begin(), items.end());
}

void Unpickler::set_items(const std::vector<Value*>& items) {
  if (items.size() % 2 != 0) fail("odd number of items for a dict");
  Dict* dict = std::get_if<Dict>(&top()->v);
  if (!dict) fail("SETITEM on a " + kind_name(*top()));
  check_container(dict->items.size() + items.size() / 2);
  for (size_t i = 0; i < items.size(); i += 2) dict->items.emplace_back(items[i], items[i + 1]);
}

// ---- the interpreter --------------------------------------------------------------

const Value& Unpickler::load() {
  while (true) {
    op_offset_ = pos_;
    const uint8_t op = read_u8();
    if (op == kStop) {
      Value* result = pop();
      return *result;
    }
    execute(op);
  }
}

void Unpickler::execute(uint8_t op) {
  switch (op) {
    case kProto: {
      const uint8_t version = read_u8();
      if (version > kHighestProtocol) fail("unsupported protocol " + std::to_string(version));
      return;
    }
    case kFrame:
      read_le(8);  // frames only help buffered readers; the data is all here
      return;
    case kMark:
      if (marks_.size() >= limits_.max_marks) fail("too many MARKs");
      marks_.push_back(stack_.size());
      return;
    case kPop:
      pop();
      return;
    case kPopMark:
      pop_mark();
      return;
    case kDup:
      push(top());
      return;

    case kNone:
      push(make(Value{None{}}));
      return;
    case kNewTrue:
      push(make(Value{true}));
      return;
    case kNewFalse:
      push(make(Value{false}));
      return;
    case kBinInt:
      push(make(Value{int64_t{static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))}}));
      return;
    case kBinInt1:
      push(make(Value{static_cast<int64_t>(read_le(1))}));
      return;
    case kBinInt2:
      push(make(Value{static_cast<int64_t>(read_le(2))}));
      return;
    case kLong1: {
      const uint8_t n = read_u8();
      if (n > 8) fail("integer wider than 64 bits");
      uint64_t v = read_le(n);
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
      push(make(Value{static_cast<int64_t>(v)}));
      return;
    }
    case kBinFloat: {
      const std::string_view raw = read_bytes(8);
      uint64_t bits = 0;
      for (char c : raw) bits = (bits << 8) | static_cast<uint8_t>(c);  // big-endian
      push(make(Value{std::bit_cast<double>(bits)}));
      return;
    }
    case kShortBinUnicode:
      push(make(Value{std::string(read_bytes(read_le(1)))}));
      return;
    case kBinUnicode:
      push(make(Value{std::string(read_bytes(read_le(4)))}));
      return;
    case kBinUnicode8:
      push(make(Value{std::string(read_bytes(read_le(8)))}));
      return;

    case kEmptyTuple:
      push(make(Value{Tuple{}}));
      return;
    case kEmptyList:
      push(make(Value{List{}}));
      return;
    case kEmptyDict:
      push(make(Value{Dict{}}));
      return;
    case kTuple1:
    case kTuple2:
    case kTuple3: {
      const size_t n = op - kTuple1 + 1;
      Tuple t;
      t.items.resize(n);
      for (size_t i = n; i-- > 0;) t.items[i] = pop();
      push(make(Value{std::move(t)}));
      return;
    }
    case kTuple:
      push(make(Value{Tuple{pop_mark()}}));
      return;
    case kList:
      push(make(Value{List{pop_mark()}}));
      return;
    case kDict: {
      const std::vector<Value*> items = pop_mark();
      push(make(Value{Dict{}}));
      set_items(items);
      return;
    }
    case kAppend: {
      Value* item = pop();
      append_items({item});
      return;
    }
    case kAppends:
      append_items(pop_mark());
      return;
    case kSetItem: {
      Value* value = pop();
      Value* key = pop();
      set_items({key, value});
      return;
    }
    case kSetItems:
      set_items(pop_mark());
      return;

    case kBinPut:
      put_memo(read_le(1));
      return;
    case kLongBinPut:
      put_memo(read_le(4));
      return;
    case kMemoize:
      put_memo(memo_.size());
      return;
    case kBinGet:
      push(get_memo(read_le(1)));
      return;
    case kLongBinGet:
      push(get_memo(read_le(4)));
      return;

    case kGlobal: {
      const std::string_view module = read_line();
      const std::string_view name = read_line();
      push_global(module, name);
      return;
    }
    case kStackGlobal: {
      const std::string* name = get<std::string>(pop());
      const std::string* module = get<std::string>(pop());
      if (!name || !module) fail("STACK_GLOBAL needs two strings");
      push_global(*module, *name);
      return;
    }
    case kReduce:
    case kNewObj: {
      const Tuple* args = get<Tuple>(pop());
      const Global* callable = get<Global>(pop());
      if (!args || !callable) fail("call of a non-global or with non-tuple arguments");
      if (op == kNewObj && callable->kind != Global::Kind::kOrderedDict)
        fail("NEWOBJ of '" + callable->qualified_name + "'");
      reduce(*callable, *args);
      return;
    }
    case kBuild: {
      // Only OrderedDict gets state (its attributes, e.g. state_dict's
      // `_metadata`), which a checkpoint reader does not need.
      pop();
      if (!get<Dict>(top())) fail("BUILD on a " + kind_name(*top()));
      return;
    }
    case kBinPersId:
      persistent_load(*pop());
      return;
  }
  fail("unknown or unsupported opcode " + hex_byte(op));
}

}  // namespace pickle
}  // namespace rwkv::io
