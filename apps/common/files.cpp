#include "apps/common/files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "dlwpt/weights/errors.h"

namespace dlwpt::apps {

namespace fs = std::filesystem;

std::string this_process() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + " pid " + std::to_string(::getpid());
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code error;
  return fs::exists(a, error) && fs::exists(b, error) && fs::equivalent(a, b, error);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void FileLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the lock
  fd_ = -1;
}

std::optional<FileLock::Holder> FileLock::try_lock(const std::string& path, const std::string& note) {
  if (fd_ >= 0) return std::nullopt;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError("cannot open the lock file '" + path + "': " + std::strerror(errno));
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &lock) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EACCES || error == EAGAIN) {
      std::ifstream file(path);
      Holder holder;
      std::getline(file, holder.who);
      std::getline(file, holder.note);
      if (holder.who.empty()) holder.who = "another process";
      return holder;
    }
    throw FileError("cannot lock '" + path + "' (" + std::strerror(error) +
                    "): concurrent runs need a filesystem with POSIX locks");
  }
  fd_ = fd;
  const std::string record = this_process() + "\n" + note + "\n";
  const bool recorded = ::ftruncate(fd, 0) == 0 &&
                        ::pwrite(fd, record.data(), record.size(), 0) == static_cast<ssize_t>(record.size());
  (void)recorded;  // informative only: the lock is what counts, whatever the file says
  return std::nullopt;
}

}  // namespace dlwpt::apps
