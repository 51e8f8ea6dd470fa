using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// The server relays each site exactly the shares addressed to it by the sites that completed ShareKeys, ordered by
/// sender, before and after ShareKeys closes (after, from an index built once at the close).
/// </summary>
public sealed class ShareRelayTests
{
    [Theory]
    [InlineData(5, 1, 0)]
    [InlineData(9, 2, 2)]
    [InlineData(12, 3, 4)]
    public void SharesFor_SomeSitesNeverShare_EverySiteGetsExactlyTheSharesAddressedToIt(int n, int seed, int silent)
    {
        using var fx = new ProtocolFixture(n, seed, vectorLength: 8);
        ClientRound[] clients = [.. Enumerable.Range(1, n).Select(fx.Client)];
        var server = new ServerRound(fx.Parameters);
        foreach (ClientRound c in clients)
        {
            server.AcceptAdvertisement(c.AdvertiseKeys());
        }

        server.CloseAdvertiseKeys();
        var sent = new List<EncryptedShare>();
        foreach (ClientRound c in clients.Skip(silent).Reverse())
        {
            IReadOnlyList<EncryptedShare> shares = c.ShareKeys(server.AdvertisementsFor(c.Index));
            Assert.True(server.AcceptShares(c.Index, shares));
            sent.AddRange(shares);
        }

        EncryptedShare[][] whileOpen = [.. Enumerable.Range(1, n).Select(u => server.SharesFor(u).ToArray())];
        server.CloseShareKeys();

        for (int u = 1; u <= n; u++)
        {
            EncryptedShare[] expected = [.. sent.Where(s => s.Recipient == u).OrderBy(s => s.Sender)];
            Assert.Equal(expected, server.SharesFor(u));
            Assert.Equal(expected, whileOpen[u - 1]);
            Assert.Equal(n - silent - (u > silent ? 1 : 0), expected.Length);
        }
    }

    [Fact]
    public void SharesFor_AfterClose_TheRelayCannotBeChangedByTheCaller()
    {
        using var fx = new ProtocolFixture(5, 4, vectorLength: 8);
        var (_, server) = fx.ThroughShareKeys();

        IReadOnlyList<EncryptedShare> relayed = server.SharesFor(1);

        Assert.Throws<NotSupportedException>(() => ((IList<EncryptedShare>)relayed)[0] = relayed[1]);
        Assert.Throws<ProtocolViolationException>(() => server.SharesFor(6));
    }

    [Fact]
    public async Task AdvertisementsForAndSharesFor_AfterTheirStagesClosed_ServedWhileTheRoundsLockIsHeld()
    {
        // Hostile-site review, session 57: Finish and UnmaskingShortfall hold the round's lock for the whole
        // reconstruction (seconds at n = 500), and the relays of a closed stage took the same lock, so a site's
        // concurrent AwaitAdvertisements or AwaitShares calls each parked a thread-pool thread on it. After their stages
        // closed neither changes again: they are served without the lock. The lock is taken here as Finish takes it.
        using var fx = new ProtocolFixture(5, 7, vectorLength: 8);
        var (_, server) = fx.ThroughShareKeys();
        IReadOnlyList<KeyAdvertisement> adsBefore = server.AdvertisementsFor(2);
        IReadOnlyList<EncryptedShare> sharesBefore = server.SharesFor(2);
        object gate = typeof(ServerRound).GetField("_gate", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(server)!;
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            lock (gate)
            {
                held.Set();
                release.Wait();
            }
        });
        holder.Start();
        held.Wait();
        try
        {
            IReadOnlyList<KeyAdvertisement> ads = await Task.Run(() => server.AdvertisementsFor(2)).WaitAsync(TimeSpan.FromSeconds(30));
            IReadOnlyList<EncryptedShare> shares = await Task.Run(() => server.SharesFor(2)).WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(adsBefore, ads);
            Assert.Equal(sharesBefore, shares);
        }
        finally
        {
            release.Set();
            holder.Join();
        }
    }
}
