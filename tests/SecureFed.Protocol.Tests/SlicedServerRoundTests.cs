using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

public sealed class SlicedServerRoundTests
{
    public static TheoryData<int, int, int, int> Cases => new()
    {
        // n, seed, slices, degree (n - 1 = complete graph)
        { 10, 1, 3, 9 },
        { 16, 2, 4, 8 },
        { 12, 3, 5, 11 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FinishSliced_SameMessagesWithDropouts_SumEqualsFinishBitForBit(int n, int seed, int slices, int degree)
    {
        using var fx = new ProtocolFixture(n, seed, vectorLength: 1031, bitWidth: seed % 2 == 0 ? 32 : 21, threshold: ((degree + 1) / 2) + 1, degree: degree);
        var clients = Enumerable.Range(1, n).Select(fx.Client).ToArray();
        try
        {
            var single = new ServerRound(fx.Parameters);
            var sliced = ServerRound.ForSlicedInput(fx.Parameters);
            var both = new[] { single, sliced };
            // Site 1 drops before sharing keys, 2 and 3 before their masked input (their s is rebuilt), 4 after it.
            int[] alive = [.. Enumerable.Range(1, n)];
            foreach (ClientRound c in clients)
            {
                KeyAdvertisement ad = c.AdvertiseKeys();
                Array.ForEach(both, s => s.AcceptAdvertisement(ad));
            }

            Array.ForEach(both, s => s.CloseAdvertiseKeys());
            foreach (ClientRound c in clients.Where(c => c.Index != 1))
            {
                IReadOnlyList<EncryptedShare> shares = c.ShareKeys(single.AdvertisementsFor(c.Index));
                Array.ForEach(both, s => s.AcceptShares(c.Index, shares));
            }

            Array.ForEach(both, s => s.CloseShareKeys());
            int m = fx.Parameters.VectorLength;
            int sliceSize = (m + slices - 1) / slices;
            uint[][] sliceSums = [.. Enumerable.Range(0, slices).Select(k => new uint[Math.Min(sliceSize, m - (k * sliceSize))])];
            var masked = new uint[m];
            foreach (ClientRound c in clients.Where(c => c.Index > 3))
            {
                c.MaskInput(single.SharesFor(c.Index), fx.Inputs[c.Index - 1], masked);
                single.AcceptMaskedInput(c.Index, masked);
                for (int k = 0; k < slices; k++)
                {
                    ModularVector.Add(sliceSums[k], masked.AsSpan(k * sliceSize, sliceSums[k].Length), fx.Parameters.BitWidth);
                }

                sliced.RecordSlicedMaskedInput(c.Index);
            }

            IReadOnlyList<int> survivors = single.CloseMaskedInput();
            Assert.Equal(survivors, sliced.CloseMaskedInput());
            foreach (int u in survivors.Where(u => u != 4))
            {
                ConsistencySignature sig = clients[u - 1].SignSurvivors(survivors);
                Array.ForEach(both, s => s.AcceptConsistencySignature(sig));
            }

            UnmaskRequest request = single.CloseConsistency();
            sliced.CloseConsistency();
            foreach (ConsistencySignature signer in request.Signatures)
            {
                UnmaskResponse response = clients[signer.Sender - 1].Unmask(request);
                Array.ForEach(both, s => s.AcceptUnmaskResponse(response));
            }

            AggregationResult expected = single.Finish(maxDegreeOfParallelism: 1);
            using SlicedUnmasking unmasking = sliced.FinishSliced();
            uint[] sum = new uint[m];
            for (int k = 0; k < slices; k++)
            {
                unmasking.ApplyTo(sliceSums[k], k * sliceSize);
                sliceSums[k].CopyTo(sum, k * sliceSize);
            }

            AggregationResult actual = unmasking.ToResult(sum);
            Assert.Equal(expected.Sum, actual.Sum);
            Assert.Equal(fx.ExpectedSum(alive.Where(u => u > 3)), actual.Sum);
            Assert.Equal(expected.Contributors, actual.Contributors);
            Assert.Equal(expected.DroppedBeforeShares, actual.DroppedBeforeShares);
            Assert.Equal(expected.DroppedBeforeInput, actual.DroppedBeforeInput);
            Assert.Equal(expected.DroppedAfterInput, actual.DroppedAfterInput);
            Assert.Equal([1], actual.DroppedBeforeShares);
            Assert.Equal([2, 3], actual.DroppedBeforeInput);
            Assert.Equal(ProtocolStage.Completed, sliced.Stage);
        }
        finally
        {
            Array.ForEach(clients, c => c.Dispose());
        }
    }

    [Fact]
    public void AcceptMaskedInput_OnSlicedRound_ThrowsNamingTheSlicedCall()
    {
        using var fx = new ProtocolFixture(3, 5);
        var sliced = ServerRound.ForSlicedInput(fx.Parameters);

        var ex = Assert.Throws<InvalidOperationException>(() => sliced.AcceptMaskedInput(1, new uint[fx.Parameters.VectorLength]));
        Assert.Contains("RecordSlicedMaskedInput", ex.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => new ServerRound(fx.Parameters).RecordSlicedMaskedInput(1));
    }

    [Fact]
    public void RecordSlicedMaskedInput_TwiceOrBeforeTheStage_IsAProtocolViolation()
    {
        using var fx = new ProtocolFixture(4, 6);
        var sliced = ServerRound.ForSlicedInput(fx.Parameters);
        Assert.Throws<ProtocolViolationException>(() => sliced.RecordSlicedMaskedInput(1)); // still at AdvertiseKeys
        var clients = Enumerable.Range(1, 4).Select(fx.Client).ToArray();
        try
        {
            foreach (ClientRound c in clients)
            {
                sliced.AcceptAdvertisement(c.AdvertiseKeys());
            }

            sliced.CloseAdvertiseKeys();
            foreach (ClientRound c in clients)
            {
                sliced.AcceptShares(c.Index, c.ShareKeys(sliced.AdvertisementsFor(c.Index)));
            }

            sliced.CloseShareKeys();
            sliced.RecordSlicedMaskedInput(2);

            var ex = Assert.Throws<ProtocolViolationException>(() => sliced.RecordSlicedMaskedInput(2));
            Assert.Contains("already sent its masked input", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            Array.ForEach(clients, c => c.Dispose());
        }
    }
}
