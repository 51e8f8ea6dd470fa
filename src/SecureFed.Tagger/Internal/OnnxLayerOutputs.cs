using System.Text;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Makes a BERT-style ONNX export return every transformer layer's hidden states, not only the last: each layer ends in
/// the <c>Add</c> node of its output LayerNorm (the one whose inputs include the initializer
/// <c>encoder.layer.N.output.LayerNorm.bias</c>), and that node's output is added to the graph's outputs (ONNX
/// <c>ModelProto.graph</c> = field 7, <c>GraphProto.output</c> = field 12, a <c>ValueInfoProto</c> with a float tensor
/// type of rank 3). The protobuf is edited on the wire: every other byte of the model stays as it was, so the weights and
/// the original outputs are unchanged. No ONNX library is needed for so small an edit.
/// </summary>
internal static class OnnxLayerOutputs
{
    private const int ModelGraph = 7;
    private const int GraphNode = 1;
    private const int GraphOutput = 12;
    private const int NodeInput = 1;
    private const int NodeOutput = 2;
    private const int NodeOpType = 4;

    /// <summary>
    /// <paramref name="model"/> with layers 0 … <paramref name="layers"/> − 1 as outputs; <paramref name="names"/> their
    /// output names in layer order (the last layer's is usually the existing <c>last_hidden_state</c>, not added twice).
    /// </summary>
    /// <exception cref="InvalidDataException">The model is not a protobuf this can read, or a layer's end is not found.</exception>
    public static byte[] Expose(byte[] model, int layers, out string[] names)
    {
        ArgumentNullException.ThrowIfNull(model);
        (int graphTag, int graphStart, int graphLength) = Find(model, 0, model.Length, ModelGraph)
            ?? throw new InvalidDataException("the ONNX model has no graph");
        var found = new string?[layers];
        var outputs = new HashSet<string>(StringComparer.Ordinal);
        int at = graphStart;
        while (at < graphStart + graphLength)
        {
            (int field, int start, int length, int next) = Read(model, at);
            if (field == GraphNode)
            {
                Node(model, start, length, found);
            }
            else if (field == GraphOutput && Find(model, start, length, 1) is (_, int nameStart, int nameLength))
            {
                outputs.Add(Encoding.UTF8.GetString(model, nameStart, nameLength));
            }

            at = next;
        }

        for (int layer = 0; layer < layers; layer++)
        {
            if (found[layer] is null)
            {
                throw new InvalidDataException($"the ONNX model has no end of layer {layer} (an Add node taking encoder.layer.{layer}.output.LayerNorm.bias)");
            }
        }

        names = [.. found.Select(n => n!)];
        var added = new List<byte>();
        foreach (string name in names.Where(n => !outputs.Contains(n)))
        {
            byte[] dims = [.. Field(1, Field(2, "batch"u8.ToArray())), .. Field(1, Field(2, "sequence"u8.ToArray())), .. Field(1, Field(2, "hidden"u8.ToArray()))];
            byte[] tensor = [.. Varint((1 << 3) | 0), .. Varint(1), .. Field(2, dims)]; // elem_type FLOAT, shape
            byte[] valueInfo = [.. Field(1, Encoding.UTF8.GetBytes(name)), .. Field(2, Field(1, tensor))];
            added.AddRange(Field(GraphOutput, valueInfo));
        }

        return WithGraphExtended(model, graphTag, graphStart, graphLength, [.. added]);
    }

    /// <summary>
    /// The model with <paramref name="added"/> appended to its graph, written once into one new array (the model is
    /// about 90 MB: no intermediate copy of the graph).
    /// </summary>
    private static byte[] WithGraphExtended(byte[] model, int graphTag, int graphStart, int graphLength, byte[] added)
    {
        byte[] header = [.. Varint((ulong)((ModelGraph << 3) | 2)), .. Varint((ulong)graphLength + (ulong)added.Length)];
        int graphEnd = graphStart + graphLength;
        var result = new byte[graphTag + header.Length + graphLength + added.Length + (model.Length - graphEnd)];
        var to = result.AsSpan();
        model.AsSpan(0, graphTag).CopyTo(to);
        to = to[graphTag..];
        header.CopyTo(to);
        to = to[header.Length..];
        model.AsSpan(graphStart, graphLength).CopyTo(to);
        to = to[graphLength..];
        added.CopyTo(to);
        to = to[added.Length..];
        model.AsSpan(graphEnd).CopyTo(to);
        return result;
    }

    /// <summary>Records the node's output as layer N's end when it is the Add of layer N's output LayerNorm.</summary>
    private static void Node(byte[] model, int start, int length, string?[] found)
    {
        string op = "";
        var inputs = new List<string>(2);
        string? output = null;
        int at = start;
        while (at < start + length)
        {
            (int field, int s, int l, int next) = Read(model, at);
            switch (field)
            {
                case NodeInput:
                    inputs.Add(Encoding.UTF8.GetString(model, s, l));
                    break;
                case NodeOutput:
                    output ??= Encoding.UTF8.GetString(model, s, l);
                    break;
                case NodeOpType:
                    op = Encoding.UTF8.GetString(model, s, l);
                    break;
            }

            at = next;
        }

        if (op != "Add" || output is null)
        {
            return;
        }

        for (int layer = 0; layer < found.Length; layer++)
        {
            if (inputs.Contains($"encoder.layer.{layer}.output.LayerNorm.bias"))
            {
                found[layer] = output;
            }
        }
    }

    /// <summary>The first length-delimited <paramref name="field"/> in [start, start + length): its tag's offset, value start and length.</summary>
    private static (int Tag, int Start, int Length)? Find(byte[] b, int start, int length, int field)
    {
        int at = start;
        while (at < start + length)
        {
            (int f, int s, int l, int next) = Read(b, at);
            if (f == field)
            {
                return (at, s, l);
            }

            at = next;
        }

        return null;
    }

    private static (int Field, int Start, int Length, int Next) Read(byte[] b, int at)
    {
        ulong key = ReadVarint(b, ref at);
        int field = (int)(key >> 3);
        switch ((int)(key & 7))
        {
            case 0:
                int start = at;
                ReadVarint(b, ref at);
                return (field, start, at - start, at);
            case 1:
                return Fixed(8);
            case 2:
                ulong length = ReadVarint(b, ref at);
                if (length > (ulong)(b.Length - at))
                {
                    throw new InvalidDataException($"the ONNX model is cut short (field {field} at offset {at})");
                }

                return (field, at, (int)length, at + (int)length);
            case 5:
                return Fixed(4);
            default:
                throw new InvalidDataException($"the ONNX model is not a protobuf this can read (wire type {key & 7} at offset {at})");
        }

        (int, int, int, int) Fixed(int size) => at + size <= b.Length ? (field, at, size, at + size) : throw new InvalidDataException($"the ONNX model is cut short (field {field} at offset {at})");
    }

    private static ulong ReadVarint(byte[] b, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (at >= b.Length)
            {
                throw new InvalidDataException("the ONNX model is cut short (in a varint)");
            }

            byte x = b[at++];
            value |= (ulong)(x & 0x7f) << shift;
            if ((x & 0x80) == 0)
            {
                return value;
            }
        }

        throw new InvalidDataException("the ONNX model has a varint longer than 10 bytes");
    }

    private static byte[] Field(int field, byte[] value) => [.. Varint((ulong)((field << 3) | 2)), .. Varint((ulong)value.Length), .. value];

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>(10);
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }
}
