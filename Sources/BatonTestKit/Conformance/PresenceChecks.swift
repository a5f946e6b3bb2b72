import Baton

extension LeaseStoreConformance {
    static let presenceChecks: [ConformanceCheck] = [
        presenceMembership,
        presenceGroupsAreIndependent,
    ]

    static let presenceMembership = ConformanceCheck(
        "presence: members are listed sorted, expire after their ttl, and leave at once"
    ) { harness in
        let store = try await harness.makeStore()
        let group = Conformance.unique("presence")
        let long = Conformance.longTTL(harness)
        let empty = try await store.members(group: group)
        try expect(empty.isEmpty, "members(group:) of a new group is \(empty), expected []")
        try await store.heartbeat(group: group, member: "node-c", ttl: long)
        try await store.heartbeat(group: group, member: "node-b", ttl: long)
        try await store.heartbeat(group: group, member: "Node-Z", ttl: long)
        try await store.heartbeat(group: group, member: "node-b", ttl: long)
        // The member of the short ttl joins last, right before the listing: on a store timed by the real clock
        // (etcd's leases), slow writes before it cannot make it expire before it is listed.
        try await store.heartbeat(group: group, member: "node-a", ttl: harness.ttl)
        let all = try await store.members(group: group)
        try expect(
            all == ["Node-Z", "node-a", "node-b", "node-c"],
            "members(group:) is \(all), expected [Node-Z, node-a, node-b, node-c] (live, unique, sorted)"
        )
        try await harness.elapse(harness.ttl * 2)
        let afterExpiry = try await store.members(group: group)
        try expect(
            afterExpiry == ["Node-Z", "node-b", "node-c"],
            "members(group:) after node-a's ttl is \(afterExpiry), expected [Node-Z, node-b, node-c]"
        )
        try await store.leave(group: group, member: "node-b")
        try await store.leave(group: group, member: "node-never-joined")
        let afterLeave = try await store.members(group: group)
        try expect(
            afterLeave == ["Node-Z", "node-c"],
            "members(group:) after node-b left is \(afterLeave), expected [Node-Z, node-c]"
        )
        try await store.heartbeat(group: group, member: "node-a", ttl: long)
        let rejoined = try await store.members(group: group)
        try expect(
            rejoined == ["Node-Z", "node-a", "node-c"],
            "members(group:) after node-a rejoined is \(rejoined), expected [Node-Z, node-a, node-c]"
        )
        for member in rejoined { try await store.leave(group: group, member: member) }
        let none = try await store.members(group: group)
        try expect(none.isEmpty, "members(group:) after everyone left is \(none), expected []")
    }

    static let presenceGroupsAreIndependent = ConformanceCheck(
        "presence: groups whose names share prefixes or separators are independent"
    ) { harness in
        let store = try await harness.makeStore()
        let long = Conformance.longTTL(harness)
        let base = Conformance.unique("groups")
        let groups = [base, base + "/x", base + "x", base + "/"]
        for (index, group) in groups.enumerated() {
            try await store.heartbeat(group: group, member: "member-\(index)", ttl: long)
        }
        for (index, group) in groups.enumerated() {
            let members = try await store.members(group: group)
            try expect(
                members == ["member-\(index)"],
                "members(group: \(group)) is \(members), expected only member-\(index)"
            )
            try await store.leave(group: group, member: "member-\(index)")
        }
    }
}
