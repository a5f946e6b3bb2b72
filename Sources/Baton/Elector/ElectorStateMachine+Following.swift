extension ElectorStateMachine {
    // MARK: Following

    mutating func handleFollowing(
        _ following: inout Following,
        _ input: Input,
        now: Duration,
        into actions: inout [Action]
    ) {
        switch input {
        case .acquired(let id, let lease):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            let (deadline, renewAt) = term(of: lease, sentAt: request.sentAt)
            if now >= deadline {
                // The answer came too late to act on safely. It is not released: the answer may be a renewal of a
                // term whose work is still stopping (demoted at its deadline), and a release sent now could reach
                // the store after the next acquire has taken the same term again. That next acquire, soon, either
                // takes the term again (same holder) or finds it expired.
                following.failures += 1
                following.retryAt = now + delay(failures: following.failures)
                state = .following(following)
                wake(at: following.retryAt!, into: &actions)
                return
            }
            // The term's own ttl is the configured one: renews ask for it.
            var granted = lease
            granted.ttl = settings.ttl
            if !granted.leaderInfo.isSameTerm(as: following.leader) {
                actions.append(.leaderChanged(granted.leaderInfo))
            }
            let leading = Leading(
                lease: granted,
                deadline: deadline,
                renewAt: renewAt,
                inFlight: nil,
                failures: 0
            )
            state = .leading(leading)
            lastOwnToken = granted.token
            mayBeQueued = false
            actions.append(.elected(granted))
            wake(at: min(leading.renewAt, leading.deadline), into: &actions)

        case .held(let id, let info):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            mayBeQueued = true
            following.detached = false
            following.failures = 0
            if following.freedDuringRequest {
                // The refusal may be older than the release the feed reported meanwhile (the feed will not
                // report it again): ask once more rather than wait for a wake-up that already came.
                following.freedDuringRequest = false
                sendAcquire(&following, now: now, into: &actions)
                state = .following(following)
                return
            }
            if !info.isSameTerm(as: following.leader) {
                following.leader = info
                actions.append(.leaderChanged(info))
            }
            planWait(&following, now: now, into: &actions)
            state = .following(following)

        case .acquireFailed(let id, let error):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            following.freedDuringRequest = false
            failAcquire(&following, error, now: now, into: &actions)

        case .renewed, .renewLost, .renewFailed:
            // Answers to renews of a term already given up: nothing to act on.
            state = .following(following)

        case .checked(let id, let info):
            guard let check = following.check, check.id == id else {
                state = .following(following)
                return
            }
            following.check = nil
            note(info, in: &following, into: &actions)
            if mayTry(info), following.inFlight == nil {
                // The key is free although the feed said nothing: it may have died silently. Campaign now.
                following.failures = 0
                sendAcquire(&following, now: now, into: &actions)
            } else {
                armCheck(&following, now: now, into: &actions)
            }
            state = .following(following)

        case .checkFailed(let id, let error):
            guard let check = following.check, check.id == id else {
                state = .following(following)
                return
            }
            following.check = nil
            actions.append(.storeError(error))
            retryCheck(&following, now: now, into: &actions)
            state = .following(following)

        case .presence, .presenceFailed:
            // Handled by `handlePresence` before the role's handler.
            state = .following(following)

        case .observed(let info):
            note(info, in: &following, into: &actions)
            let mayTry = mayTry(info)
            if mayTry, following.inFlight == nil {
                following.failures = 0
                sendAcquire(&following, now: now, into: &actions)
            } else if mayTry {
                following.freedDuringRequest = true
            } else if following.failures == 0, settings.reaskInterval == nil {
                // A poll planned while the feed was not yet delivering: the working feed replaces it (a retry
                // after a store error stays planned), and a check once per ttl watches the feed itself. (A
                // candidate that keeps its place in a queue by asking again keeps its plan.)
                following.retryAt = nil
                armCheck(&following, now: now, into: &actions)
            }
            state = .following(following)

        case .feedLost:
            if following.inFlight == nil, following.retryAt == nil {
                following.retryAt = now + settings.pollInterval
                wake(at: following.retryAt!, into: &actions)
            }
            state = .following(following)

        case .tick:
            if let request = following.inFlight, now >= request.sentAt + settings.requestTimeout {
                following.inFlight = nil
                failAcquire(
                    &following, .timeout("acquire got no answer within \(settings.requestTimeout)"), now: now,
                    into: &actions)
                return
            }
            if following.inFlight == nil, let retryAt = following.retryAt, now >= retryAt {
                sendAcquire(&following, now: now, into: &actions)
            }
            if let check = following.check, now >= check.sentAt + settings.requestTimeout {
                following.check = nil
                actions.append(
                    .storeError(.timeout("a check of the store got no answer within \(settings.requestTimeout)")))
                retryCheck(&following, now: now, into: &actions)
            }
            if following.inFlight == nil, following.check == nil, let checkAt = following.checkAt, now >= checkAt {
                let id = takeRequestID()
                following.checkAt = nil
                following.check = Request(id: id, sentAt: now)
                actions.append(.check(id))
            }
            state = .following(following)
            scheduleFollowing(following, into: &actions)

        case .resign:
            if let request = following.inFlight {
                let until = now + settings.resignWait
                state = .resigning(request, until: until)
                wake(at: until, into: &actions)
            } else {
                finishWithoutTerm(into: &actions)
            }

        case .stop:
            finishWithoutTerm(hasRequestInFlight: following.inFlight != nil, into: &actions)
        }
    }

    /// A leader seen by the feed or a check: the store is reachable, and a different term is reported.
    func note(_ info: LeaderInfo?, in following: inout Following, into actions: inout [Action]) {
        following.detached = false
        if (info == nil) != (following.leader == nil) || (info.map { !$0.isSameTerm(as: following.leader) } ?? false) {
            following.leader = info
            actions.append(.leaderChanged(info))
        }
    }

    mutating func sendAcquire(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        // Quorum mode: no campaign without a quorum; the presence check that finds one sends the acquire.
        if settings.quorum != nil, !presence.met {
            following.retryAt = nil
            return
        }
        let id = takeRequestID()
        following.inFlight = Request(id: id, sentAt: now)
        following.retryAt = nil
        following.freedDuringRequest = false
        following.checkAt = nil
        actions.append(.acquire(id))
        wake(at: now + settings.requestTimeout, into: &actions)
    }

    mutating func failAcquire(
        _ following: inout Following,
        _ error: BatonError,
        now: Duration,
        into actions: inout [Action]
    ) {
        following.failures += 1
        following.detached = true
        following.retryAt = now + delay(failures: following.failures)
        state = .following(following)
        actions.append(.storeError(error))
        wake(at: following.retryAt!, into: &actions)
    }

    mutating func scheduleFollowing(_ following: Following, into actions: inout [Action]) {
        if let request = following.inFlight {
            wake(at: request.sentAt + settings.requestTimeout, into: &actions)
        } else if let retryAt = following.retryAt {
            wake(at: retryAt, into: &actions)
        }
        if let check = following.check {
            wake(at: check.sentAt + settings.requestTimeout, into: &actions)
        } else if following.inFlight == nil, let checkAt = following.checkAt {
            wake(at: checkAt, into: &actions)
        }
    }

    /// After a failed check: tries again after a backoff, unless an acquire in flight answers the question anyway.
    mutating func retryCheck(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        guard following.inFlight == nil else { return }
        let checkAt = now + min(delay(failures: 1), settings.ttl)
        following.checkAt = checkAt
        wake(at: checkAt, into: &actions)
    }

    /// After a refusal: plans the next try. While the change feed works it wakes this candidate when the key is
    /// released or expires, so polling is only the fallback for a feed that is down, and a check once per ttl
    /// watches the feed itself. On a store that queues waiting candidates the candidate instead asks again every
    /// ``Settings/reaskInterval`` (sooner while the feed is down), which keeps its place in the queue.
    mutating func planWait(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        if let reask = settings.reaskInterval {
            following.retryAt = now + (feedHealthy ? reask : min(reask, settings.pollInterval))
            wake(at: following.retryAt!, into: &actions)
            return
        }
        following.retryAt = feedHealthy ? nil : now + settings.pollInterval
        if let retryAt = following.retryAt { wake(at: retryAt, into: &actions) }
        armCheck(&following, now: now, into: &actions)
    }

    /// While the feed looks healthy and nothing is asked of the store, plans the next check of the store (one read)
    /// a ttl from now, unless one is planned already (or the candidate asks again anyway, see ``planWait``).
    mutating func armCheck(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        guard settings.reaskInterval == nil else { return }
        guard feedHealthy, following.inFlight == nil, following.check == nil, following.checkAt == nil else { return }
        let checkAt = now + settings.ttl
        following.checkAt = checkAt
        wake(at: checkAt, into: &actions)
    }

}
