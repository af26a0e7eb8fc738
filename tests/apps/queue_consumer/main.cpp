// Links pixflow::queue from the installed package: parses a redis:// URL and a worker config, prints
// what it read. No Redis server is needed.
#include <iostream>

#include <pixflow/queue/address.hpp>
#include <pixflow/queue/config.hpp>
#include <pixflow/queue/worker.hpp>

int main() {
  auto address = pixflow::queue::parse_redis_url("redis://:secret@127.0.0.1:6390/2");
  if (!address) {
    std::cerr << address.error().reason << '\n';
    return 1;
  }
  pixflow::queue::WorkerOptions options;
  options.redis = *address;
  std::cout << "queue component ok: " << options.redis.to_string() << ' '
            << pixflow::queue::to_json(options.queue_config).dump() << '\n';
  return 0;
}
