// Constructors of the concrete schedulers (one .cpp each); make_scheduler picks one.
#pragma once
#include <memory>

#include "sched/scheduler.h"

namespace sdpal::sched {

std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& c, float eta);
std::unique_ptr<Scheduler> make_euler(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_dpm_multistep(const SchedulerConfig& c);

}  // namespace sdpal::sched
