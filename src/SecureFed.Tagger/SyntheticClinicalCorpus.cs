using System.Globalization;

namespace SecureFed.Tagger;

/// <summary>
/// A deterministic generator of SYNTHETIC clinical sentences annotated in IOB2 with Disease, Symptom, Drug,
/// Procedure and Genetics. Nothing here comes from real patients or real records: sentences are filled-in templates
/// over small hand-written lexicons. It exists so the demo and tests run without external data, and to give each
/// simulated hospital a different distribution (entity mix, phrasing, spelling, abbreviations, drug naming, date
/// format). It is learnable by a small model but not trivial: sites see different lexicon subsets, multi-word and
/// abbreviated mentions, negations and entity-free distractor sentences. Do not report results on it as clinical
/// performance.
/// </summary>
public static class SyntheticClinicalCorpus
{
    private static readonly string[] TypeNames = ["Disease", "Symptom", "Drug", "Procedure", "Genetics"];

    // (American, British, abbreviation or null)
    private static readonly (string Us, string Uk, string? Abbr)[] Diseases =
    [
        ("type 2 diabetes mellitus", "type 2 diabetes mellitus", "T2DM"), ("hypertension", "hypertension", "HTN"),
        ("chronic kidney disease", "chronic kidney disease", "CKD"), ("atrial fibrillation", "atrial fibrillation", "AF"),
        ("pneumonia", "pneumonia", null), ("anemia", "anaemia", null), ("acute myeloid leukemia", "acute myeloid leukaemia", "AML"),
        ("breast cancer", "breast cancer", null), ("colorectal carcinoma", "colorectal carcinoma", "CRC"), ("asthma", "asthma", null),
        ("chronic obstructive pulmonary disease", "chronic obstructive pulmonary disease", "COPD"),
        ("congestive heart failure", "congestive heart failure", "CHF"), ("hypothyroidism", "hypothyroidism", null),
        ("rheumatoid arthritis", "rheumatoid arthritis", "RA"), ("cystic fibrosis", "cystic fibrosis", "CF"),
        ("ischemic stroke", "ischaemic stroke", null), ("hemophilia A", "haemophilia A", null), ("sepsis", "sepsis", null),
        ("migraine", "migraine", null), ("epilepsy", "epilepsy", null), ("osteoporosis", "osteoporosis", null),
        ("celiac disease", "coeliac disease", null), ("esophagitis", "oesophagitis", null), ("lung adenocarcinoma", "lung adenocarcinoma", null),
        ("deep vein thrombosis", "deep vein thrombosis", "DVT"), ("myocardial infarction", "myocardial infarction", "MI"),
        ("urinary tract infection", "urinary tract infection", "UTI"), ("gout", "gout", null), ("psoriasis", "psoriasis", null),
        ("Parkinson disease", "Parkinson disease", null),
    ];

    private static readonly (string Us, string Uk, string? Abbr)[] Symptoms =
    [
        ("fever", "fever", null), ("chest pain", "chest pain", null), ("shortness of breath", "shortness of breath", "SOB"),
        ("dyspnea", "dyspnoea", null), ("nausea", "nausea", null), ("vomiting", "vomiting", null), ("headache", "headache", null),
        ("fatigue", "fatigue", null), ("dizziness", "dizziness", null), ("cough", "cough", null), ("abdominal pain", "abdominal pain", null),
        ("edema", "oedema", null), ("palpitations", "palpitations", null), ("night sweats", "night sweats", null),
        ("weight loss", "weight loss", null), ("diarrhea", "diarrhoea", null), ("syncope", "syncope", null),
        ("hemoptysis", "haemoptysis", null), ("joint pain", "joint pain", null), ("rash", "rash", null),
        ("blurred vision", "blurred vision", null), ("back pain", "back pain", null), ("chills", "chills", null),
        ("loss of appetite", "loss of appetite", null), ("sore throat", "sore throat", null),
    ];

    // (US generic, UK generic, brand)
    private static readonly (string Us, string Uk, string Brand)[] Drugs =
    [
        ("metformin", "metformin", "Glucophage"), ("atorvastatin", "atorvastatin", "Lipitor"), ("lisinopril", "lisinopril", "Zestril"),
        ("apixaban", "apixaban", "Eliquis"), ("amoxicillin", "amoxicillin", "Amoxil"), ("acetaminophen", "paracetamol", "Tylenol"),
        ("ibuprofen", "ibuprofen", "Advil"), ("omeprazole", "omeprazole", "Prilosec"), ("levothyroxine", "levothyroxine", "Synthroid"),
        ("insulin glargine", "insulin glargine", "Lantus"), ("warfarin", "warfarin", "Coumadin"), ("albuterol", "salbutamol", "Ventolin"),
        ("prednisone", "prednisolone", "Deltasone"), ("methotrexate", "methotrexate", "Trexall"), ("furosemide", "furosemide", "Lasix"),
        ("clopidogrel", "clopidogrel", "Plavix"), ("sertraline", "sertraline", "Zoloft"), ("enoxaparin", "enoxaparin", "Lovenox"),
        ("tamoxifen", "tamoxifen", "Nolvadex"), ("osimertinib", "osimertinib", "Tagrisso"), ("allopurinol", "allopurinol", "Zyloprim"),
        ("ceftriaxone", "ceftriaxone", "Rocephin"), ("levetiracetam", "levetiracetam", "Keppra"), ("imatinib", "imatinib", "Gleevec"),
    ];

    private static readonly (string Us, string Uk, string? Abbr)[] Procedures =
    [
        ("colonoscopy", "colonoscopy", null), ("computed tomography", "computed tomography", "CT"), ("magnetic resonance imaging", "magnetic resonance imaging", "MRI"),
        ("echocardiography", "echocardiography", "TTE"), ("coronary angiography", "coronary angiography", null), ("appendectomy", "appendicectomy", null),
        ("hemodialysis", "haemodialysis", "HD"), ("chest X-ray", "chest X-ray", "CXR"), ("skin biopsy", "skin biopsy", null),
        ("total hip replacement", "total hip replacement", "THR"), ("laparoscopic cholecystectomy", "laparoscopic cholecystectomy", null),
        ("bronchoscopy", "bronchoscopy", null), ("upper endoscopy", "upper endoscopy", "EGD"), ("percutaneous coronary intervention", "percutaneous coronary intervention", "PCI"),
        ("lumbar puncture", "lumbar puncture", "LP"), ("electrocardiogram", "electrocardiogram", "ECG"), ("mastectomy", "mastectomy", null),
        ("bone marrow biopsy", "bone marrow biopsy", null), ("cataract surgery", "cataract surgery", null), ("thyroidectomy", "thyroidectomy", null),
    ];

    private static readonly string[] Genetics =
    [
        "BRCA1 mutation", "BRCA2 mutation", "EGFR exon 19 deletion", "KRAS G12D", "CFTR F508del", "HLA-B27", "factor V Leiden",
        "JAK2 V617F", "HER2 amplification", "TP53 mutation", "APOE4", "MTHFR C677T", "ALK rearrangement", "BCR-ABL fusion",
        "FLT3-ITD", "NPM1 mutation", "Lynch syndrome variant", "HFE C282Y", "PIK3CA mutation", "BRAF V600E",
    ];

    // Templates: tokens separated by spaces; {Disease} {Symptom} {Drug} {Procedure} {Genetics} slots, {Date} {Age} {Dose} {N} {Sex} fillers.
    private static readonly string[][] Templates =
    [
        // 0: narrative
        [
            "The patient is a {Age} year old {Sex} with a history of {Disease} and {Disease} .",
            "She presented on {Date} with {Symptom} and {Symptom} .",
            "He was admitted with worsening {Symptom} , attributed to {Disease} .",
            "{Drug} {Dose} was started for {Disease} .",
            "{Drug} was discontinued because of {Symptom} .",
            "{Procedure} on {Date} showed no evidence of {Disease} .",
            "Genetic testing revealed {Genetics} , consistent with the family history of {Disease} .",
            "She underwent {Procedure} for {Disease} without complications .",
            "He denies {Symptom} , {Symptom} or {Symptom} .",
            "Discharged home on {Drug} and {Drug} with follow-up in {N} weeks .",
            "The patient lives with family and walks daily .",
            "Tumour board recommended {Drug} given {Genetics} .",
            "Mother had {Disease} ; father carries {Genetics} .",
            "Follow-up visit planned on {Date} .",
        ],
        // 1: terse
        [
            "Pt c/o {Symptom} since {Date} .",
            "{Age} y/o {Sex} , PMH {Disease} , {Disease} .",
            "Rx : {Drug} {Dose} .",
            "Hx {Disease} ; on {Drug} .",
            "{Procedure} done , unremarkable .",
            "No {Symptom} , no {Symptom} .",
            "{Genetics} positive .",
            "Plan : {Procedure} , then {Drug} {Dose} .",
            "Stable , no new complaints .",
            "{Symptom} resolved after {Drug} .",
            "Referred for {Procedure} re {Disease} .",
            "Seen {Date} , review in {N} weeks .",
        ],
        // 2: structured
        [
            "Diagnosis : {Disease} .",
            "Secondary diagnosis : {Disease} .",
            "Chief complaint : {Symptom} .",
            "Medication : {Drug} {Dose} daily .",
            "Procedure : {Procedure} ( {Date} ) .",
            "Molecular findings : {Genetics} .",
            "Allergies : none known .",
            "Symptoms on admission : {Symptom} , {Symptom} .",
            "Indication for {Procedure} : {Disease} .",
            "Change of therapy : {Drug} replaced by {Drug} .",
            "Date of admission : {Date} .",
            "Germline testing : {Genetics} ; somatic : {Genetics} .",
        ],
    ];

    private static readonly string[] Doses = ["500 mg", "5 mg", "10 mg", "20 mg", "40 mg", "100 mg", "2.5 mg", "1 g", "75 mg", "20 units"];

    private static readonly SiteProfile[] Fixed =
    [
        new()
        {
            Name = "site-de",
            Description = "fictional university hospital in Germany: structured notes, generic drug names, British spelling, dd.MM.yyyy dates, procedure- and disease-heavy",
            TypeWeights = [1.2, 0.8, 1.0, 1.4, 0.6],
            BritishSpelling = true,
            BrandNameRate = 0.05,
            AbbreviationRate = 0.2,
            DateFormat = "dd.MM.yyyy",
            PhrasingStyle = 2,
            LexiconCoverage = 0.8,
        },
        new()
        {
            Name = "site-fr",
            Description = "fictional general hospital in France: narrative notes, British spelling (paracetamol, oedema), dd/MM/yyyy dates, symptom-heavy",
            TypeWeights = [1.0, 1.6, 1.0, 0.7, 0.4],
            BritishSpelling = true,
            BrandNameRate = 0.2,
            AbbreviationRate = 0.1,
            DateFormat = "dd/MM/yyyy",
            PhrasingStyle = 0,
            LexiconCoverage = 0.8,
        },
        new()
        {
            Name = "site-jp",
            Description = "fictional cancer centre in Japan: terse notes, American spelling, brand names, yyyy/MM/dd dates, many abbreviations, genetics- and drug-heavy",
            TypeWeights = [0.9, 0.7, 1.4, 0.8, 1.6],
            BritishSpelling = false,
            BrandNameRate = 0.5,
            AbbreviationRate = 0.6,
            DateFormat = "yyyy/MM/dd",
            PhrasingStyle = 1,
            LexiconCoverage = 0.8,
        },
    ];

    /// <summary>The three built-in site profiles: site-de, site-fr, site-jp.</summary>
    public static IReadOnlyList<SiteProfile> Profiles { get; } = Fixed;

    /// <summary>
    /// <paramref name="count"/> profiles: the built-in ones first, then deterministic pseudo-random ones named
    /// <c>site-04</c>, <c>site-05</c>, ... (same count, same profiles, on every machine).
    /// </summary>
    /// <param name="count">Number of sites, at least 1.</param>
    /// <returns>The profiles.</returns>
    public static IReadOnlyList<SiteProfile> CreateProfiles(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var result = new List<SiteProfile>(count);
        for (int i = 0; i < count; i++)
        {
            if (i < Fixed.Length)
            {
                result.Add(Fixed[i]);
                continue;
            }

            var rng = new Random(7919 * (i + 1));
            string[] formats = ["dd.MM.yyyy", "dd/MM/yyyy", "yyyy/MM/dd", "MM/dd/yyyy", "yyyy-MM-dd", "d MMM yyyy"];
            result.Add(new SiteProfile
            {
                Name = string.Create(CultureInfo.InvariantCulture, $"site-{i + 1:D2}"),
                Description = "fictional hospital with a deterministic pseudo-random writing style",
                TypeWeights = [.. Enumerable.Range(0, 5).Select(_ => 0.4 + (1.2 * rng.NextDouble()))],
                BritishSpelling = rng.NextDouble() < 0.5,
                BrandNameRate = 0.6 * rng.NextDouble(),
                AbbreviationRate = 0.6 * rng.NextDouble(),
                DateFormat = formats[rng.Next(formats.Length)],
                PhrasingStyle = rng.Next(3),
                LexiconCoverage = 0.7 + (0.2 * rng.NextDouble()),
            });
        }

        return result;
    }

    /// <summary>Generates <paramref name="sentenceCount"/> synthetic annotated sentences in the style of <paramref name="profile"/>.</summary>
    /// <param name="profile">The site style.</param>
    /// <param name="sentenceCount">Number of sentences (&gt;= 0).</param>
    /// <param name="seed">Seed; same inputs give the same sentences.</param>
    /// <returns>IOB2-annotated sentences.</returns>
    public static IReadOnlyList<Sentence> Generate(SiteProfile profile, int sentenceCount, int seed)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentOutOfRangeException.ThrowIfNegative(sentenceCount);
        if (profile.TypeWeights.Count != 5)
        {
            throw new ArgumentException("TypeWeights must have 5 values (Disease, Symptom, Drug, Procedure, Genetics)", nameof(profile));
        }

        var rng = new Random(HashCode(profile.Name) ^ seed);
        var lexiconRng = new Random(HashCode(profile.Name));
        int[] diseases = Subset(Diseases.Length, profile.LexiconCoverage, lexiconRng);
        int[] symptoms = Subset(Symptoms.Length, profile.LexiconCoverage, lexiconRng);
        int[] drugs = Subset(Drugs.Length, profile.LexiconCoverage, lexiconRng);
        int[] procedures = Subset(Procedures.Length, profile.LexiconCoverage, lexiconRng);
        int[] genetics = Subset(Genetics.Length, profile.LexiconCoverage, lexiconRng);

        var sentences = new List<Sentence>(sentenceCount);
        while (sentences.Count < sentenceCount)
        {
            // Mostly the site's own phrasing, sometimes another style (sites are not perfectly consistent).
            int style = rng.NextDouble() < 0.75 ? profile.PhrasingStyle : rng.Next(Templates.Length);
            string template = PickTemplate(Templates[style], profile, rng);
            var tokens = new List<string>();
            var tags = new List<string>();
            foreach (string part in template.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                switch (part)
                {
                    case "{Disease}":
                        AddEntity(tokens, tags, "Disease", Surface(Diseases[diseases[rng.Next(diseases.Length)]], profile, rng));
                        break;
                    case "{Symptom}":
                        AddEntity(tokens, tags, "Symptom", Surface(Symptoms[symptoms[rng.Next(symptoms.Length)]], profile, rng));
                        break;
                    case "{Drug}":
                        var drug = Drugs[drugs[rng.Next(drugs.Length)]];
                        AddEntity(tokens, tags, "Drug", rng.NextDouble() < profile.BrandNameRate ? drug.Brand : profile.BritishSpelling ? drug.Uk : drug.Us);
                        break;
                    case "{Procedure}":
                        AddEntity(tokens, tags, "Procedure", Surface(Procedures[procedures[rng.Next(procedures.Length)]], profile, rng));
                        break;
                    case "{Genetics}":
                        AddEntity(tokens, tags, "Genetics", Genetics[genetics[rng.Next(genetics.Length)]]);
                        break;
                    case "{Date}":
                        var date = new DateTime(2018, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddDays(rng.Next(2500));
                        AddPlain(tokens, tags, date.ToString(profile.DateFormat, CultureInfo.InvariantCulture));
                        break;
                    case "{Age}":
                        AddPlain(tokens, tags, (18 + rng.Next(75)).ToString(CultureInfo.InvariantCulture));
                        break;
                    case "{N}":
                        AddPlain(tokens, tags, (1 + rng.Next(12)).ToString(CultureInfo.InvariantCulture));
                        break;
                    case "{Dose}":
                        AddPlain(tokens, tags, Doses[rng.Next(Doses.Length)]);
                        break;
                    case "{Sex}":
                        AddPlain(tokens, tags, rng.NextDouble() < 0.5 ? "woman" : "man");
                        break;
                    default:
                        tokens.Add(part);
                        tags.Add("O");
                        break;
                }
            }

            sentences.Add(new Sentence(tokens, tags));
        }

        return sentences;
    }

    private static string PickTemplate(string[] templates, SiteProfile profile, Random rng)
    {
        // Weight each template by the site's type weights of the slots it contains.
        var weights = new double[templates.Length];
        double total = 0;
        for (int i = 0; i < templates.Length; i++)
        {
            double w = 1;
            for (int t = 0; t < TypeNames.Length; t++)
            {
                if (templates[i].Contains("{" + TypeNames[t] + "}", StringComparison.Ordinal))
                {
                    w *= profile.TypeWeights[t];
                }
            }

            weights[i] = w;
            total += w;
        }

        double r = rng.NextDouble() * total;
        for (int i = 0; i < templates.Length; i++)
        {
            r -= weights[i];
            if (r <= 0)
            {
                return templates[i];
            }
        }

        return templates[^1];
    }

    private static string Surface((string Us, string Uk, string? Abbr) entry, SiteProfile profile, Random rng)
    {
        if (entry.Abbr is not null && rng.NextDouble() < profile.AbbreviationRate)
        {
            return entry.Abbr;
        }

        string text = profile.BritishSpelling ? entry.Uk : entry.Us;
        return rng.NextDouble() < 0.05 ? char.ToUpperInvariant(text[0]) + text[1..] : text;
    }

    private static void AddEntity(List<string> tokens, List<string> tags, string type, string text)
    {
        string[] parts = text.Split(' ');
        for (int i = 0; i < parts.Length; i++)
        {
            tokens.Add(parts[i]);
            tags.Add((i == 0 ? "B-" : "I-") + type);
        }
    }

    private static void AddPlain(List<string> tokens, List<string> tags, string text)
    {
        foreach (string part in text.Split(' '))
        {
            tokens.Add(part);
            tags.Add("O");
        }
    }

    private static int[] Subset(int n, double coverage, Random rng)
    {
        int keep = Math.Clamp((int)Math.Round(n * coverage), 1, n);
        int[] all = [.. Enumerable.Range(0, n)];
        rng.Shuffle(all);
        return all[..keep];
    }

    private static int HashCode(string s)
    {
        // Stable (not string.GetHashCode, which is randomised per process).
        unchecked
        {
            int h = 17;
            foreach (char c in s)
            {
                h = (h * 31) + c;
            }

            return h;
        }
    }
}
