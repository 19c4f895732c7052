#include "server/download_progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace rwkv::server {
namespace {

constexpr double kMB = 1e6;
// Without a known size, a log line per this many bytes.
constexpr uint64_t kLogStepUnknownSize = 100'000'000;

uint64_t log_step(uint64_t total) { return total > 0 ? (total + 9) / 10 : kLogStepUnknownSize; }

std::string size_text(uint64_t total) {
  return total > 0 ? fmt::format("{:.1f} MB", static_cast<double>(total) / kMB) : "unknown size";
}

}  // namespace

DownloadProgress::DownloadProgress(std::string name, uint64_t total)
    : name_(std::move(name)), total_(total), terminal_(isatty(STDERR_FILENO) == 1) {
  next_log_at_ = log_step(total_);
  if (!terminal_) spdlog::info("downloading {} ({})", name_, size_text(total_));
}

void DownloadProgress::advance(uint64_t bytes) {
  done_ += bytes;
  if (terminal_) {
    // Redrawing for every network read would flood the terminal.
    if (Clock::now() - last_draw_ >= std::chrono::milliseconds(100)) draw_bar();
    return;
  }
  if (done_ >= next_log_at_ && (total_ == 0 || done_ < total_)) {
    spdlog::info("downloading {}: {:.1f} MB of {}", name_, static_cast<double>(done_) / kMB,
                 size_text(total_));
    next_log_at_ = done_ + log_step(total_);
  }
}

void DownloadProgress::finish() {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (terminal_) {
    draw_bar();
    std::fputc('\n', stderr);
  }
  spdlog::info("downloaded {}: {:.1f} MB in {:.1f} s", name_, static_cast<double>(done_) / kMB,
               seconds);
}

void DownloadProgress::draw_bar() {
  last_draw_ = Clock::now();
  const double seconds = std::chrono::duration<double>(last_draw_ - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_) / kMB / seconds : 0;
  if (total_ == 0) {
    std::fprintf(stderr, "\r%s %8.1f MB %7.1f MB/s", name_.c_str(),
                 static_cast<double>(done_) / kMB, rate);
  } else {
    constexpr int kWidth = 30;
    const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    const int filled = static_cast<int>(fraction * kWidth);
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %.1f/%.1f MB %.1f MB/s", name_.c_str(),
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, ' ').c_str(),
                 static_cast<int>(fraction * 100), static_cast<double>(done_) / kMB,
                 static_cast<double>(total_) / kMB, rate);
  }
  std::fflush(stderr);
}

}  // namespace rwkv::server
