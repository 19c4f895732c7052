// Progress of one download on stderr: a bar redrawn in place when stderr is a
// terminal, otherwise a log line every tenth of the file (logs stay readable).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rwkv::server {

class DownloadProgress {
 public:
  // `total` bytes; 0 when the server did not say.
  DownloadProgress(std::string name, uint64_t total);
  void advance(uint64_t bytes);
  // The closing line (a terminal's bar ends with a newline).
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw_bar();

  std::string name_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool terminal_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  uint64_t next_log_at_ = 0;  // log lines: the byte count of the next one
};

}  // namespace rwkv::server
