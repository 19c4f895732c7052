#include "engine/states/state_store.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/common/sha256.h"
#include "engine/states/disk_state_store.h"
#include "engine/states/memory_state_store.h"
#include "engine/states/redis_state_store.h"

namespace rwkv::states {
namespace {

constexpr std::string_view kRecordMagic = "RWKVSREC";
constexpr uint32_t kRecordVersion = 1;
constexpr size_t kRecordFixed = 16;      // magic, version, JSON length
constexpr size_t kMaxRecordJson = 4096;  // far above what encode writes (~250 bytes)

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(std::string_view in, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(in[off + i])) << (8 * i);
  return v;
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

bool valid_state_id(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id)
    if (!id_char(c)) return false;
  return true;
}

bool valid_state_owner(std::string_view owner) {
  if (owner.size() > 64) return false;
  for (char c : owner)
    if (!id_char(c) || c == '.' || c == '_' || c == '-') return false;
  return true;
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::optional<StoredState>> StateStore::get_many(const std::string& owner,
                                                             const std::vector<std::string>& ids) {
  std::vector<std::optional<StoredState>> out;
  for (const std::string& id : ids) out.push_back(get(owner, id));
  return out;
}

std::vector<std::optional<StateMeta>> StateStore::stat_many(const std::string& owner,
                                                            const std::vector<std::string>& ids) {
  std::vector<std::optional<StateMeta>> out;
  for (const std::string& id : ids) out.push_back(stat(owner, id));
  return out;
}

std::string encode_state_record(const StateMeta& meta, std::string_view blob) {
  const std::string json =
      nlohmann::json{{"owner", meta.owner},           {"id", meta.id},
                     {"created_ms", meta.created_ms}, {"expires_ms", meta.expires_ms},
                     {"bytes", blob.size()},          {"write_id", meta.write_id}}
          .dump();
  std::string out;
  out.reserve(kRecordFixed + json.size() + 4 + blob.size());
  out.append(kRecordMagic);
  put_u32(out, kRecordVersion);
  put_u32(out, uint32_t(json.size()));
  out.append(json);
  put_u32(out, crc32_of(json));
  out.append(blob);
  return out;
}

StateMeta decode_state_record(std::string_view record, std::string_view* blob) {
  if (record.size() < kRecordFixed || record.substr(0, kRecordMagic.size()) != kRecordMagic)
    throw std::runtime_error("not a state record (bad magic or too short)");
  if (get_u32(record, 8) != kRecordVersion)
    throw std::runtime_error("unsupported record version " + std::to_string(get_u32(record, 8)));
  const uint32_t n = get_u32(record, 12);
  if (n > kMaxRecordJson)
    throw std::runtime_error("implausible metadata length " + std::to_string(n));
  if (record.size() < kRecordFixed + n + 4) throw std::runtime_error("truncated metadata");
  const std::string_view json_text = record.substr(kRecordFixed, n);
  if (get_u32(record, kRecordFixed + n) != crc32_of(json_text))
    throw std::runtime_error("metadata checksum mismatch");
  StateMeta meta;
  uint64_t bytes = 0;
  try {
    const nlohmann::json j = nlohmann::json::parse(json_text);
    meta.owner = j.at("owner").get<std::string>();
    meta.id = j.at("id").get<std::string>();
    meta.created_ms = j.at("created_ms").get<int64_t>();
    meta.expires_ms = j.at("expires_ms").get<int64_t>();
    bytes = j.at("bytes").get<uint64_t>();
    meta.write_id = j.value("write_id", std::string());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("bad metadata: ") + e.what());
  }
  if (!valid_state_owner(meta.owner) || !valid_state_id(meta.id))
    throw std::runtime_error("bad metadata: invalid owner or id");
  const std::string_view rest = record.substr(kRecordFixed + n + 4);
  try {
    if (blob) {
      if (rest.size() != bytes)
        throw std::runtime_error("the state is " + std::to_string(rest.size()) +
                                 " bytes, the metadata says " + std::to_string(bytes));
      meta.info = inspect_state_blob(rest);
      *blob = rest;
    } else {
      meta.info = read_state_header(rest);
      if (meta.info.bytes != bytes)
        throw std::runtime_error("the state's header disagrees with the metadata");
    }
  } catch (const StateBlobError& e) {
    throw std::runtime_error(e.what());
  }
  return meta;
}

void check_state_for_put(StateMeta& meta, std::string_view blob) {
  if (!valid_state_owner(meta.owner))
    throw std::invalid_argument("invalid state owner '" + meta.owner + "'");
  if (!valid_state_id(meta.id)) throw std::invalid_argument("invalid state id '" + meta.id + "'");
  try {
    meta.info = inspect_state_blob(blob);
  } catch (const StateBlobError& e) {
    throw std::invalid_argument(e.what());
  }
  thread_local std::mt19937_64 rng(std::random_device{}());
  const uint64_t random[2] = {rng(), rng()};
  meta.write_id = common::to_hex(reinterpret_cast<const uint8_t*>(random), sizeof(random));
}

std::unique_ptr<StateStore> make_state_store(const StateStoreOptions& o) {
  switch (o.kind) {
    case StoreKind::kMemory:
      return std::make_unique<MemoryStateStore>(o.max_bytes ? o.max_bytes : uint64_t(1) << 30);
    case StoreKind::kDisk:
      return std::make_unique<DiskStateStore>(o.dir, o.max_bytes);
    case StoreKind::kRedis:
      return std::make_unique<RedisStateStore>(o.redis_url, o.redis_prefix);
  }
  throw std::invalid_argument("unknown state store kind");
}

}  // namespace rwkv::states
