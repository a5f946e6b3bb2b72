extension ElectorStateMachine {
    // MARK: Quorum

    /// Sends a presence check now.
    mutating func checkPresence(now: Duration, into actions: inout [Action]) {
        let id = takeRequestID()
        presence.inFlight = Request(id: id, sentAt: now)
        actions.append(.checkPresence(id))
        wake(at: now + settings.requestTimeout, into: &actions)
    }

    /// On a tick in quorum mode: time out a check, send the next one when due, step down when the last count
    /// that reached the quorum is older than a ttl.
    mutating func presenceTick(now: Duration, into actions: inout [Action]) {
        guard settings.quorum != nil, !isFinished else { return }
        if case .resigning = state { return }
        if let request = presence.inFlight, now >= request.sentAt + settings.requestTimeout {
            presence.inFlight = nil
            presence.nextAt = now
            actions.append(.storeError(.timeout("the presence check got no answer within \(settings.requestTimeout)")))
        }
        if case .leading(let leading) = state, now >= presence.confirmedUntil {
            presence.met = false
            stepDownForQuorum(leading, now: now, into: &actions)
        }
        if presence.inFlight == nil, now >= presence.nextAt { checkPresence(now: now, into: &actions) }
        wake(at: presence.inFlight.map { $0.sentAt + settings.requestTimeout } ?? presence.nextAt, into: &actions)
        if case .leading = state { wake(at: presence.confirmedUntil, into: &actions) }
    }

    mutating func handlePresence(_ input: Input, now: Duration, into actions: inout [Action]) {
        guard let quorum = settings.quorum, let request = presence.inFlight else { return }
        switch input {
        case .presence(let id, let alive) where id == request.id:
            presence.inFlight = nil
            presence.nextAt = request.sentAt + settings.renewInterval
            let wasMet = presence.met
            presence.met = alive >= quorum
            if presence.met { presence.confirmedUntil = request.sentAt + settings.ttl }
            switch state {
            case .leading(let leading) where !presence.met:
                stepDownForQuorum(leading, now: now, into: &actions)
            case .following(var following) where presence.met && !wasMet && following.inFlight == nil:
                sendAcquire(&following, now: now, into: &actions)
                state = .following(following)
            default:
                break
            }
        case .presenceFailed(let id, let error) where id == request.id:
            presence.inFlight = nil
            presence.nextAt = now + min(delay(failures: 1), settings.renewInterval)
            actions.append(.storeError(error))
        default:
            return
        }
        guard !isFinished else { return }
        wake(at: presence.nextAt, into: &actions)
        if case .leading = state { wake(at: presence.confirmedUntil, into: &actions) }
    }

    /// Demotes for lack of quorum, then gives the key back once the term's work has returned, so a candidate that
    /// has a quorum can take it at once.
    mutating func stepDownForQuorum(_ leading: Leading, now: Duration, into actions: inout [Action]) {
        demote(leading, .quorumLost, now: now, into: &actions)
        actions.append(.release(Release(lease: leading.lease, workDeadline: leading.deadline)))
    }

    // MARK: Leading

    mutating func handleLeading(
        _ leading: inout Leading,
        _ input: Input,
        now: Duration,
        into actions: inout [Action]
    ) {
        // The safety rule comes first: past the deadline nothing else matters.
        if now >= leading.deadline, !isStopInput(input) {
            demote(leading, .deadlineReached, now: now, into: &actions)
            return
        }
        switch input {
        case .renewed(let id, let lease):
            guard let request = leading.inFlight, request.id == id else { break }
            leading.inFlight = nil
            leading.failures = 0
            (leading.deadline, leading.renewAt) = term(of: lease, sentAt: request.sentAt)
            leading.lease = lease
            leading.lease.ttl = settings.ttl
            if now >= leading.deadline {
                demote(leading, .deadlineReached, now: now, into: &actions)
                return
            }
            actions.append(.extended(leading.lease))

        case .renewLost(let id):
            guard let request = leading.inFlight, request.id == id else { break }
            demote(leading, .lost, now: now, into: &actions)
            return

        case .renewFailed(let id, let error):
            guard let request = leading.inFlight, request.id == id else { break }
            leading.inFlight = nil
            leading.failures += 1
            leading.renewAt = now + min(delay(failures: leading.failures), settings.renewInterval)
            actions.append(.storeError(error))

        case .observed(let info):
            let sameTerm = info.map { $0.holder == leading.lease.holder && $0.token == leading.lease.token } ?? false
            if !sameTerm, leading.inFlight == nil {
                // The store may say the term is over; a renew settles it either way.
                leading.renewAt = now
            }

        case .tick:
            if let request = leading.inFlight, now >= request.sentAt + settings.requestTimeout {
                leading.inFlight = nil
                leading.failures += 1
                leading.renewAt = now
                actions.append(.storeError(.timeout("renew got no answer within \(settings.requestTimeout)")))
            }

        case .acquired, .held, .acquireFailed, .feedLost, .presence, .presenceFailed, .checked, .checkFailed:
            break

        case .resign, .stop:
            // Demote first (the work is cancelled); the release follows once the work has returned.
            state = .finished
            actions.append(.demoted(leading.lease, .resigned))
            actions.append(.finish(release: Release(lease: leading.lease, workDeadline: leading.deadline)))
            return
        }
        if leading.inFlight == nil, now >= leading.renewAt {
            let id = takeRequestID()
            leading.inFlight = Request(id: id, sentAt: now)
            actions.append(.renew(id, leading.lease))
        }
        state = .leading(leading)
        var next = leading.deadline
        if let request = leading.inFlight {
            next = min(next, request.sentAt + settings.requestTimeout)
        } else {
            next = min(next, leading.renewAt)
        }
        wake(at: next, into: &actions)
    }

    /// The deadline and the next renew of a term granted by a request sent at `sentAt`: the configured ttl, or the
    /// shorter time the store promised (``Lease/ttl``). A shortened term is renewed early enough to leave as much
    /// time between its renew and its deadline as a full term has (at once, if less is left).
    func term(of lease: Lease, sentAt: Duration) -> (deadline: Duration, renewAt: Duration) {
        guard lease.ttl < settings.ttl else {
            return (sentAt + settings.ttl - settings.margin, sentAt + settings.renewInterval)
        }
        let renewIn = max(.zero, lease.ttl - (settings.ttl - settings.renewInterval))
        return (sentAt + lease.ttl - settings.margin, sentAt + renewIn)
    }

    func isStopInput(_ input: Input) -> Bool {
        switch input {
        case .resign, .stop: true
        default: false
        }
    }

    mutating func demote(
        _ leading: Leading, _ reason: DemotionReason, now: Duration, into actions: inout [Action]
    ) {
        actions.append(.demoted(leading.lease, reason))
        var following = Following(
            leader: reason == .lost ? nil : leading.lease.leaderInfo,
            detached: reason == .deadlineReached,
            inFlight: nil,
            retryAt: nil,
            failures: 0
        )
        sendAcquire(&following, now: now, into: &actions)
        state = .following(following)
    }

    // MARK: Resigning

    mutating func handleResigning(
        _ request: Request,
        until: Duration,
        _ input: Input,
        now: Duration
    ) -> [Action] {
        switch input {
        case .acquired(let id, let lease) where id == request.id:
            state = .finished
            let deadline = term(of: lease, sentAt: request.sentAt).deadline
            return [.finish(release: Release(lease: lease, workDeadline: deadline))]
        case .held(let id, _) where id == request.id:
            mayBeQueued = true
            var actions: [Action] = []
            finishWithoutTerm(into: &actions)
            return actions
        case .acquireFailed(let id, _) where id == request.id:
            // A failed acquire (a timeout, a lost connection) may still have landed: leave the queue, and give
            // back a term it may have started.
            var actions: [Action] = []
            finishWithoutTerm(hasRequestInFlight: true, into: &actions)
            return actions
        case .stop:
            // The acquire is still in flight: it may yet join the queue.
            var actions: [Action] = []
            finishWithoutTerm(hasRequestInFlight: true, into: &actions)
            return actions
        case .tick where now >= until:
            var actions: [Action] = []
            finishWithoutTerm(hasRequestInFlight: true, into: &actions)
            return actions
        case .tick:
            var actions: [Action] = []
            wake(at: until, into: &actions)
            return actions
        default:
            return []
        }
    }

}
