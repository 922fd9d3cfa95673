#pragma once

#include <functional>
#include <iterator>
#include <optional>
#include <taiga/runtime/fiber.hpp>
#include <utility>

namespace taiga {

/// A generator on fibers: the body produces values with `yield(v)`, the
/// consumer pulls them with range-for. Built the way python-fibers' tests
/// build one: before each resume the generator's fiber is re-parented to the
/// consumer, and `yield` switches to the parent.
///
///     taiga::generator<int> squares([](auto& yield) {
///       for (int i = 1; i <= 3; ++i) yield(i * i);
///     });
///     for (int v : squares) std::cout << v << '\n';  // 1 4 9
template <class T>
class generator {
 public:
  class yielder {
   public:
    void operator()(T v) {
      g_->value_.emplace(std::move(v));
      g_->fiber_.parent()->switch_to();
    }

   private:
    friend class generator;
    explicit yielder(generator* g) : g_(g) {}
    generator* g_;
  };

  explicit generator(std::function<void(yielder&)> body, std::size_t stack_size = 64 * 1024)
      : body_(std::move(body)),
        fiber_(fiber::function_type([this]() -> std::any {
                 yielder y(this);
                 body_(y);
                 return {};
               }),
               stack_size) {}
  generator(const generator&) = delete;
  generator& operator=(const generator&) = delete;

  /// The next value, or nullopt once the body has returned. Rethrows what the
  /// body throws.
  std::optional<T> next() {
    if (fiber_.ended()) return std::nullopt;
    value_.reset();
    fiber_.set_parent(fiber::current());
    fiber_.switch_to();
    return std::exchange(value_, std::nullopt);
  }

  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(generator* g) : g_(g) { ++*this; }
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = g_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !cur_.has_value(); }

   private:
    generator* g_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  std::function<void(yielder&)> body_;
  std::optional<T> value_;
  fiber fiber_;  // last: unwound (if suspended) before value_ and body_ die
};

}  // namespace taiga
