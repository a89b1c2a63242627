// signals.h — crashes become reports, and a watchdog (part of cuda_emu.h).
//
// During a launch, SIGSEGV, SIGBUS and SIGILL (a trapping UndefinedBehaviorSanitizer check in the
// sanitizer build) go to a handler on an alternate stack that names the kernel
// thread, the code address (file:line, through the loader) and what the faulting address is near
// (a kernel argument, a shared array, a fiber stack's guard page), then leaves the faulting fiber
// for the scheduler as any failed check does. A timer checks that threads keep starting, exiting
// or arriving at barriers; a thread that runs a whole tick without that is preempted (plain build:
// a spin loop waiting for another thread's write lets that thread run); after `watchdog_seconds`
// without progress the launch fails, naming the thread that runs and the threads that wait. The previous handlers are restored after the launch.
#pragma once

#include <csignal>
#include <ctime>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

namespace emu::sig {

constexpr double kTickSeconds = 0.1;

struct Saved {
    struct sigaction segv, bus, ill, tick;
    stack_t alt;
    timer_t timer;
    bool timer_armed = false;
    uint64_t seen_progress = 0;
    double idle_seconds = 0;
};
static Saved saved;
alignas(16) static char alt_stack[64 * 1024];

EMU_NOSAN inline int tick_signal() { return SIGRTMIN + 4; }

EMU_NOSAN inline uintptr_t interrupted_pc(void* context) {
#if defined(__x86_64__)
    return uintptr_t(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#else
    (void)context;
    return 0;
#endif
}

EMU_NOSAN inline std::string where(uintptr_t pc) {
    Dl_info info{};
    if (pc && dladdr(reinterpret_cast<void*>(pc), &info) && uintptr_t(info.dli_fbase) == module_base())
        return pc_token(pc);
    char buf[48];
    std::snprintf(buf, sizeof buf, "0x%" PRIxPTR " (outside the kernel module)", pc);
    return buf;
}

EMU_NOSAN inline std::string describe_fault(uintptr_t a) {
    // NOTE: an overflowing frame may skip its own guard page and fault in another fiber's stack
    // or guard (the stacks are separate mappings that the kernel often places side by side).
    for (char* s : state.all_stacks) {
        uintptr_t lo = reinterpret_cast<uintptr_t>(s);
        if (a + kGuardBytes >= lo && a < lo + state.stack_bytes) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "a fiber stack or its guard page: local memory overflows the %zu KiB stack "
                          "(GPUCONV_EMU_STACK_KB)", state.stack_bytes / 1024);
            return buf;
        }
    }
    return describe_address(a, 1);
}

EMU_NOSAN inline void on_crash(int signo, siginfo_t* info, void* context) {
    Fiber* self = state.cur;
    if (self == nullptr) {  // not in a kernel thread: let the previous handler see the fault again
        sigaction(signo, signo == SIGBUS ? &saved.bus : signo == SIGILL ? &saved.ill : &saved.segv, nullptr);
        return;
    }
    ++self->in_shim;  // building the message is emulator code
    const std::string pc = where(interrupted_pc(context));
    state.failed = true;
    if (!state.error.empty()) {
    } else if (signo == SIGILL) {
#ifdef EMU_SANITIZER
        state.error = "undefined behaviour at " + pc + " in " + thread_name(*self) + ": a -fsanitize=undefined check "
                      "trapped (signed integer overflow, shift out of range, division by zero, null pointer, ...)";
#else
        state.error = "SIGILL (illegal instruction) at " + pc + " in " + thread_name(*self);
#endif
    } else {
        std::string what = (signo == SIGSEGV && info->si_code == SI_KERNEL)
                               ? std::string("a general-protection fault (no address: typically a misaligned vector "
                                             "access, or an address far outside any allocation)")
                               : describe_fault(reinterpret_cast<uintptr_t>(info->si_addr));
        state.error = std::string(signo == SIGBUS ? "SIGBUS" : "SIGSEGV") + " at " + pc + " in " + thread_name(*self) +
                      ": " + what;
    }
    switch_context(&self->sp, state.scheduler_sp);
}

EMU_NOSAN inline std::string waiting_threads() {
    unsigned running = 0, waiting = 0, unstarted = 0;
    std::string first_wait;
    for (const Fiber& f : state.fibers) {
        if (f.state == NOT_STARTED) ++unstarted;
        else if (f.state == RUNNING || f.state == READY) ++running;
        else if (f.state == AT_BLOCK_BARRIER || f.state == AT_WARP_SYNC) {
            if (waiting++ == 0) first_wait = "; first waiting: " + thread_name(f) + " at " + site(f.site_file, f.site_line);
        }
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%u threads runnable, %u waiting at a barrier, %u not started", running, waiting,
                  unstarted);
    return buf + first_wait;
}

EMU_NOSAN inline std::string watchdog_message() {
    char buf[200];
    std::snprintf(buf, sizeof buf, "watchdog: no thread of block (%u,%u,%u) started, exited or reached a barrier for "
                  "%.1f s (GPUCONV_EMU_WATCHDOG_S); ", state.block_idx.x, state.block_idx.y, state.block_idx.z,
                  saved.idle_seconds);
    return buf;
}

// Whether the interrupted thread may be switched out here: it runs the module's own code, outside
// emulator code (barriers, warp syncs), atomics and error handling.
EMU_NOSAN inline bool preemptible(const Fiber* self, void* context) {
    if (self == nullptr || self->in_shim || self->state != RUNNING || state.atomic_depth > 0 || state.failed)
        return false;
    Dl_info info{};
    const uintptr_t pc = interrupted_pc(context);
    return pc && dladdr(reinterpret_cast<void*>(pc), &info) && uintptr_t(info.dli_fbase) == module_base();
}

// Runs on the interrupted stack (no SA_ONSTACK): a thread preempted here keeps its handler frame
// on its own fiber stack and returns from the handler when the scheduler resumes it.
EMU_NOSAN inline void on_tick(int, siginfo_t*, void* context) {
    if (state.progress != saved.seen_progress) {
        saved.seen_progress = state.progress;
        saved.idle_seconds = 0;
        return;
    }
    saved.idle_seconds += kTickSeconds;
    Fiber* self = state.cur;
#ifndef EMU_SANITIZER
    // A thread that ran a whole tick while no thread started, exited or reached a barrier may be
    // spinning on memory another thread will write (the sanitizer build yields at volatile reads
    // instead): let the others run. A preemption is not progress, so a real hang still ends below.
    if (saved.idle_seconds < state.watchdog_seconds && preemptible(self, context)) {
        self->state = READY;
        switch_context(&self->sp, state.scheduler_sp);
        return;
    }
#endif
    if (saved.idle_seconds < state.watchdog_seconds) return;
    if (self == nullptr || self->in_shim) {  // the scheduler or emulator code: it checks the flag
        state.watchdog_fired = 1;
        return;
    }
    ++self->in_shim;
    state.failed = true;
    if (state.error.empty())
        state.error = watchdog_message() + thread_name(*self) + " still runs at " + where(interrupted_pc(context)) +
                      " (a spin loop waiting for a write no thread makes?); " + waiting_threads();
    switch_context(&self->sp, state.scheduler_sp);
}

EMU_NOSAN inline void install() {
    struct sigaction sa{};
    sa.sa_sigaction = &on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    stack_t alt{};
    alt.ss_sp = alt_stack;
    alt.ss_size = sizeof alt_stack;
    sigaltstack(&alt, &saved.alt);
    sigaction(SIGSEGV, &sa, &saved.segv);
    sigaction(SIGBUS, &sa, &saved.bus);
    sigaction(SIGILL, &sa, &saved.ill);
    saved.timer_armed = false;
    state.watchdog_fired = 0;
    saved.seen_progress = state.progress;
    saved.idle_seconds = 0;
    if (state.watchdog_seconds <= 0) return;
    sa.sa_sigaction = &on_tick;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;  // on the interrupted stack: see on_tick
    sigaction(tick_signal(), &sa, &saved.tick);
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = tick_signal();
    ev._sigev_un._tid = pid_t(syscall(SYS_gettid));
    if (timer_create(CLOCK_MONOTONIC, &ev, &saved.timer) != 0) return;
    itimerspec every{};
    every.it_interval.tv_nsec = every.it_value.tv_nsec = long(kTickSeconds * 1e9);
    timer_settime(saved.timer, 0, &every, nullptr);
    saved.timer_armed = true;
}

EMU_NOSAN inline void uninstall() {
    if (saved.timer_armed) {
        timer_delete(saved.timer);
        sigaction(tick_signal(), &saved.tick, nullptr);
    }
    sigaction(SIGSEGV, &saved.segv, nullptr);
    sigaction(SIGBUS, &saved.bus, nullptr);
    sigaction(SIGILL, &saved.ill, nullptr);
    // Our alternate stack is only in use while a handler runs on it; the old one comes back.
    if (saved.alt.ss_flags & SS_DISABLE) {
        stack_t off{};
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, nullptr);
    } else {
        sigaltstack(&saved.alt, nullptr);
    }
}

}  // namespace emu::sig
