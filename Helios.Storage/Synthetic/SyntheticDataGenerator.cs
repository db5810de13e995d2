using System.Globalization;
using Hl7.Fhir.Model;

namespace Helios.Storage.Synthetic;

/// <summary>
/// Deterministic synthetic FHIR R4 data: for N patients, their encounters, observations, conditions, medication
/// requests and claims, plus shared organizations and practitioners and one Group of all patients. The same
/// seed and count always give the same resources (ids included), so tests can compute expected results.
/// </summary>
public sealed class SyntheticDataGenerator(int seed = 42)
{
    private static readonly (string Code, string Display, string Unit, double Min, double Max)[] s_vitals =
    [
        ("8302-2", "Body Height", "cm", 150, 200),
        ("29463-7", "Body Weight", "kg", 45, 120),
        ("8867-4", "Heart rate", "/min", 50, 110),
        ("39156-5", "Body mass index", "kg/m2", 17, 38),
        ("2339-0", "Glucose", "mg/dL", 60, 180),
    ];

    private static readonly (string Code, string Display)[] s_conditions =
    [
        ("44054006", "Diabetes mellitus type 2"),
        ("38341003", "Hypertension"),
        ("195662009", "Acute viral pharyngitis"),
        ("10509002", "Acute bronchitis"),
        ("162864005", "Body mass index 30+ - obesity"),
    ];

    private static readonly (string Code, string Display)[] s_medications =
    [
        ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
        ("314076", "lisinopril 10 MG Oral Tablet"),
        ("308136", "amLODIPine 2.5 MG Oral Tablet"),
        ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ];

    private static readonly string[] s_family = ["Smith", "Johnson", "Müller", "García", "Nguyen", "O'Brien", "Kowalski", "Rossi", "Tanaka", "Dubois"];
    private static readonly string[] s_given = ["Ana", "Ben", "Chloé", "David", "Eva", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kara", "Liam"];
    private static readonly string[] s_cities = ["Boston", "Springfield", "Worcester", "Salem", "Lowell"];

    public int EncountersPerPatient { get; init; } = 3;
    public int ObservationsPerEncounter { get; init; } = 4;
    public int Organizations { get; init; } = 5;
    public int Practitioners { get; init; } = 10;

    public static string OrganizationId(int i) => $"org-{i}";
    public static string PractitionerId(int i) => $"pract-{i}";
    public static string PatientId(int i) => $"pat-{i}";

    public const string GroupId = "synthetic-all";

    /// <summary>Resources in dependency order: organizations, practitioners, then each patient with their data, then the group.</summary>
    public IEnumerable<Resource> Generate(int patients)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(patients);
        var random = new Random(seed);
        for (var o = 0; o < Organizations; o++)
        {
            yield return new Organization
            {
                Id = OrganizationId(o),
                Active = true,
                Name = $"{s_cities[o % s_cities.Length]} General Hospital {o}",
                Identifier = [new Identifier("http://hl7.org/fhir/sid/us-npi", (1000000000 + o).ToString(CultureInfo.InvariantCulture))],
                Address = [new Address { City = s_cities[o % s_cities.Length], State = "MA", Country = "US" }],
            };
        }

        for (var p = 0; p < Practitioners; p++)
        {
            yield return new Practitioner
            {
                Id = PractitionerId(p),
                Active = true,
                Name = [new HumanName { Family = s_family[p % s_family.Length], Given = [s_given[p % s_given.Length]], Prefix = ["Dr."] }],
                Identifier = [new Identifier("http://hl7.org/fhir/sid/us-npi", (2000000000 + p).ToString(CultureInfo.InvariantCulture))],
            };
        }

        var start = new DateTimeOffset(2015, 1, 1, 0, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < patients; i++)
        {
            var patientId = PatientId(i);
            var patientRef = new ResourceReference("Patient/" + patientId);
            var birth = new DateTime(1940, 1, 1).AddDays(random.Next(0, 365 * 70));
            yield return new Patient
            {
                Id = patientId,
                Active = true,
                Identifier = [new Identifier("urn:helios:synthetic:mrn", $"MRN-{i:D7}")],
                Name = [new HumanName { Use = HumanName.NameUse.Official, Family = s_family[random.Next(s_family.Length)], Given = [s_given[random.Next(s_given.Length)]] }],
                Gender = i % 2 == 0 ? AdministrativeGender.Female : AdministrativeGender.Male,
                BirthDate = birth.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                Address = [new Address { Line = [$"{random.Next(1, 999)} Main St"], City = s_cities[random.Next(s_cities.Length)], State = "MA", PostalCode = $"0{random.Next(1000, 2999)}", Country = "US" }],
                Telecom = [new ContactPoint(ContactPoint.ContactPointSystem.Phone, ContactPoint.ContactPointUse.Home, $"555-{random.Next(1000, 9999)}")],
                ManagingOrganization = new ResourceReference("Organization/" + OrganizationId(i % Organizations)),
                GeneralPractitioner = [new ResourceReference("Practitioner/" + PractitionerId(i % Practitioners))],
            };

            var conditionCode = s_conditions[random.Next(s_conditions.Length)];
            yield return new Condition
            {
                Id = $"{patientId}-cond-0",
                Subject = patientRef,
                ClinicalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
                VerificationStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
                Code = new CodeableConcept("http://snomed.info/sct", conditionCode.Code, conditionCode.Display, conditionCode.Display),
                Onset = new FhirDateTime(start.AddDays(random.Next(0, 3000))),
            };

            for (var e = 0; e < EncountersPerPatient; e++)
            {
                var encounterId = $"{patientId}-enc-{e}";
                var when = start.AddDays(random.Next(0, 3650)).AddMinutes(random.Next(0, 1440));
                yield return new Encounter
                {
                    Id = encounterId,
                    Status = Encounter.EncounterStatus.Finished,
                    Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", e % 3 == 0 ? "EMER" : "AMB"),
                    Type = [new CodeableConcept("http://snomed.info/sct", "185345009", "Encounter for symptom")],
                    Subject = patientRef,
                    Participant = [new Encounter.ParticipantComponent { Individual = new ResourceReference("Practitioner/" + PractitionerId(random.Next(Practitioners))) }],
                    Period = new Period(new FhirDateTime(when), new FhirDateTime(when.AddMinutes(30))),
                    ServiceProvider = new ResourceReference("Organization/" + OrganizationId(i % Organizations)),
                };

                for (var o = 0; o < ObservationsPerEncounter; o++)
                {
                    var vital = s_vitals[(e + o) % s_vitals.Length];
                    var value = Math.Round(vital.Min + (random.NextDouble() * (vital.Max - vital.Min)), 1);
                    yield return new Observation
                    {
                        Id = $"{encounterId}-obs-{o}",
                        Status = ObservationStatus.Final,
                        Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/observation-category", vital.Code == "2339-0" ? "laboratory" : "vital-signs")],
                        Code = new CodeableConcept("http://loinc.org", vital.Code, vital.Display, vital.Display),
                        Subject = patientRef,
                        Encounter = new ResourceReference("Encounter/" + encounterId),
                        Effective = new FhirDateTime(when.AddMinutes(o)),
                        Issued = when.AddMinutes(o + 5),
                        Value = new Quantity((decimal)value, vital.Unit) { System = "http://unitsofmeasure.org", Code = vital.Unit },
                    };
                }

                if (e == 0)
                {
                    var med = s_medications[random.Next(s_medications.Length)];
                    yield return new MedicationRequest
                    {
                        Id = $"{patientId}-medreq-0",
                        Status = MedicationRequest.MedicationrequestStatus.Active,
                        Intent = MedicationRequest.MedicationRequestIntent.Order,
                        Medication = new CodeableConcept("http://www.nlm.nih.gov/research/umls/rxnorm", med.Code, med.Display, med.Display),
                        Subject = patientRef,
                        Encounter = new ResourceReference("Encounter/" + encounterId),
                        AuthoredOn = when.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture),
                        Requester = new ResourceReference("Practitioner/" + PractitionerId(random.Next(Practitioners))),
                    };
                }

                yield return new Claim
                {
                    Id = $"{encounterId}-claim",
                    Status = FinancialResourceStatusCodes.Active,
                    Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
                    Use = ClaimUseCode.Claim,
                    Patient = patientRef,
                    Created = when.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture),
                    Provider = new ResourceReference("Organization/" + OrganizationId(i % Organizations)),
                    Priority = new CodeableConcept("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
                    Insurance = [new Claim.InsuranceComponent { Sequence = 1, Focal = true, Coverage = new ResourceReference { Display = "Self pay" } }],
                    Item = [new Claim.ItemComponent { Sequence = 1, ProductOrService = new CodeableConcept("http://snomed.info/sct", "185345009"), Encounter = [new ResourceReference("Encounter/" + encounterId)] }],
                    Total = new Money { Value = Math.Round((decimal)(50 + (random.NextDouble() * 500)), 2), Currency = Money.Currencies.USD },
                };
            }
        }

        var group = new Group
        {
            Id = GroupId,
            Type = Group.GroupType.Person,
            Actual = true,
            Name = "All synthetic patients",
        };
        for (var i = 0; i < patients; i++)
        {
            group.Member.Add(new Group.MemberComponent { Entity = new ResourceReference("Patient/" + PatientId(i)) });
        }

        yield return group;
    }
}
