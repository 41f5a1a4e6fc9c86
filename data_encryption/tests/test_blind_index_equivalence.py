"""A blind index answers every supported query as the same query on the plain normalised values
would: seeded random rows whose values collide in their normalised form (SSNs with and without
dashes, emails with case variants, integers as int and str, ...), each beside a plain column of
the normalised value, and for each lookup the primary keys compared."""

import datetime
import random
import uuid

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.test import TestCase

from data_encryption.blind_index import normalisers
from data_encryption.tests.search_app.models import Employee, Person, Record, Visit
from data_encryption.tests.utils import FreshKeyRingMixin

SEED = 20261201
PEOPLE, RECORDS, EMPLOYEES, VISITS, ROUNDS = 1200, 1200, 60, 800, 40
# What a plain query compares where the normaliser refuses the value: no plain value is this.
REFUSED = "refused"


def ssn_spellings(digits):
    """Spellings of one SSN that fit the field (max_length=11)."""
    return [
        digits,
        f"{digits[:3]}-{digits[3:5]}-{digits[5:]}",
        f"{digits[:3]} {digits[3:5]} {digits[5:]}",
    ]


def ssn_query_spellings(digits):
    """What a user may type to find it: longer punctuation, full-width digits."""
    wide = "".join(chr(0xFF10 + int(d)) for d in digits)
    return [*ssn_spellings(digits), f" ({digits[:3]}) {digits[3:5]}.{digits[5:]} ", wide]


def normal_ssn(value):
    if value is None:
        return None
    try:
        return normalisers.digits(value)
    except ValidationError:
        return REFUSED


def case_variant(rng, text):
    return "".join(c.upper() if rng.random() < 0.5 else c for c in text)


class Values:
    """The pools the rows and queries draw from, and each field's normalised form."""

    def __init__(self, rng):
        self.rng = rng
        self.ssns = [f"{n:09d}" for n in rng.sample(range(10**8, 10**9), PEOPLE + 200)]
        self.locals = ["ann", "Ann", "bob.smith", "Bob.Smith", "carol", "dave+news"]
        self.domains = ["example.com", "mail.org", "post.example.net"]
        self.codes = ["AbC", "abc", "ABC", "x-1", "X-1", "", "long code with spaces"]
        self.numbers = [0, 1, 7, -7, 42, 2**40, -(2**40), 10**15]
        self.dates = [
            datetime.date(1970, 1, 1) + datetime.timedelta(days=d * 997) for d in range(9)
        ]
        self.refs = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(8)]
        self.labels = ["hello", "world", "straße", "mixed words", "x"]

    def maybe(self, make, none_share=0.1):
        return None if self.rng.random() < none_share else make()

    def email(self):
        domain = case_variant(self.rng, self.rng.choice(self.domains))
        return f"{self.rng.choice(self.locals)}@{domain}"

    def code(self):
        return self.rng.choice(self.codes)

    def number(self):
        n = self.rng.choice(self.numbers)
        return n if self.rng.random() < 0.5 else str(n)

    def born(self):
        d = self.rng.choice(self.dates)
        return d if self.rng.random() < 0.5 else d.isoformat()

    def ref(self):
        r = self.rng.choice(self.refs)
        return self.rng.choice([r, str(r), str(r).upper(), r.hex])

    def label(self):
        word = case_variant(self.rng, self.rng.choice(self.labels))
        return self.rng.choice([word, f" {word}", f"{word}  "])


def normal(field, value):
    """The normalised form of ``value`` as ``field`` indexes it, as its plain column holds it."""
    if value is None:
        return None
    return {
        "ssn": normal_ssn,
        "email": normalisers.email,
        "code": str,
        "number": int,
        "born": lambda v: v if isinstance(v, datetime.date) else datetime.date.fromisoformat(v),
        "ref": lambda v: v if isinstance(v, uuid.UUID) else uuid.UUID(v),
        "label": normalisers.lower,
    }[field](value)


class EquivalenceTests(FreshKeyRingMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        rng = random.Random(SEED)
        cls.values = values = Values(rng)
        people = []
        for i in range(PEOPLE):
            ssn = values.maybe(lambda i=i: rng.choice(ssn_spellings(values.ssns[i])))
            email = values.maybe(values.email)
            people.append(
                Person(
                    name=f"p{i}",
                    ssn=ssn,
                    email=email,
                    plain_ssn=normal("ssn", ssn),
                    plain_email=normal("email", email),
                )
            )
        Person.objects.bulk_create(people, batch_size=500)
        for i in range(PEOPLE, PEOPLE + EMPLOYEES):
            badge = values.maybe(lambda: rng.choice(values.numbers[:4]))
            Employee.objects.create(
                name=f"e{i}", ssn=values.ssns[i], plain_ssn=values.ssns[i], badge=badge
            )
        records = []
        for _ in range(RECORDS):
            row = {
                f: values.maybe(getattr(values, f))
                for f in ("code", "number", "born", "ref", "label")
            }
            plains = {f"plain_{f}": normal(f, v) for f, v in row.items()}
            records.append(Record(**row, **plains))
        Record.objects.bulk_create(records, batch_size=500)
        person_pks = list(Person.objects.values_list("pk", flat=True))
        cls.badges = dict(Employee.objects.values_list("pk", "badge"))
        Visit.objects.bulk_create(
            [Visit(person_id=rng.choice(person_pks), place=f"v{i}") for i in range(VISITS)]
        )

    def setUp(self):
        super().setUp()
        self.rng = random.Random(SEED + 1)

    def query_value(self, field):
        """A value to look for: one that rows hold, spelled any way, or one none holds."""
        values, rng = self.values, self.rng
        if field == "ssn":
            digits = rng.choice(values.ssns)  # the last 200 are held by nobody
            return rng.choice([*ssn_query_spellings(digits), "n/a", None])
        make = getattr(values, field)
        return values.maybe(make, none_share=0.05)

    def assertSame(self, encrypted, plain_qs, what):
        self.assertEqual(
            sorted(encrypted.values_list("pk", flat=True)),
            sorted(plain_qs.values_list("pk", flat=True)),
            what,
        )

    def assertEquivalent(self, model, build, what):
        """``build(name, value_of)`` makes a query once with the indexed fields and their
        values, once with the plain columns and the normalised values."""
        encrypted = build(model.objects.all(), lambda f: f, lambda f, v: v)
        plain_qs = build(model.objects.all(), lambda f: f"plain_{f}", normal)
        self.assertSame(encrypted, plain_qs, what)
        self.assertEqual(encrypted.count(), plain_qs.count(), what)
        self.assertEqual(encrypted.exists(), plain_qs.exists(), what)

    def check_field(self, model, field, folds_case):
        v = self.query_value(field)
        vs = [self.query_value(field) for _ in range(self.rng.randrange(0, 6))]
        what = f"{model.__name__}.{field}: {v!r} / {vs!r}"
        self.assertEquivalent(model, lambda qs, n, x: qs.filter(**{n(field): x(field, v)}), what)
        self.assertEquivalent(model, lambda qs, n, x: qs.exclude(**{n(field): x(field, v)}), what)

        def within(qs, n, x):
            return qs.filter(**{f"{n(field)}__in": [x(field, w) for w in vs]})

        self.assertEquivalent(model, within, what)
        self.assertEquivalent(
            model,
            lambda qs, n, x: qs.exclude(**{f"{n(field)}__in": [x(field, w) for w in vs]}),
            what,
        )
        if folds_case and v is not None:
            self.assertEquivalent(
                model, lambda qs, n, x: qs.filter(**{f"{n(field)}__iexact": x(field, v)}), what
            )

    def check_combinations(self, model, first, second):
        a, b = self.query_value(first), self.query_value(second)
        bs = [self.query_value(second) for _ in range(3)]
        what = f"{model.__name__}: {first}={a!r}, {second}={b!r} / {bs!r}"
        combinations = [
            lambda q1, q2, q2s: q1 | q2,
            lambda q1, q2, q2s: q1 & ~q2,
            lambda q1, q2, q2s: ~(q1 | q2s),
            lambda q1, q2, q2s: ~q1 & ~q2,
        ]
        for combine in combinations:

            def build(qs, n, x, combine=combine):
                q1 = Q(**{n(first): x(first, a)})
                q2 = Q(**{n(second): x(second, b)})
                q2s = Q(**{f"{n(second)}__in": [x(second, w) for w in bs]})
                return qs.filter(combine(q1, q2, q2s))

            self.assertEquivalent(model, build, what)

    def test_lookups_on_each_field(self):
        for _ in range(ROUNDS):
            self.check_field(Person, "ssn", folds_case=True)
            self.check_field(Person, "email", folds_case=False)
            for field in ("code", "number", "born", "ref"):
                self.check_field(Record, field, folds_case=False)
            self.check_field(Record, "label", folds_case=True)

    def test_q_combinations_across_two_fields(self):
        for _ in range(ROUNDS):
            self.check_combinations(Person, "ssn", "email")
            self.check_combinations(Record, "number", "label")
            self.check_combinations(Record, "ref", "born")

    def test_get(self):
        for _ in range(ROUNDS):
            value = self.query_value("ssn")
            normalised = normal("ssn", value)
            try:
                expected = Person.objects.get(plain_ssn=normalised).pk
            except Person.DoesNotExist:
                expected = None
            except Person.MultipleObjectsReturned:  # NULL: many rows
                expected = "many"
            try:
                found = Person.objects.get(ssn=value).pk
            except Person.DoesNotExist:
                found = None
            except Person.MultipleObjectsReturned:
                found = "many"
            self.assertEqual(found, expected, repr(value))

    def test_through_relations_values_and_subqueries(self):
        for _ in range(ROUNDS):
            ssn, email = self.query_value("ssn"), self.query_value("email")
            n_ssn, n_email = normal("ssn", ssn), normal("email", email)
            what = f"{ssn!r} {email!r}"
            self.assertSame(
                Visit.objects.filter(person__ssn=ssn),
                Visit.objects.filter(person__plain_ssn=n_ssn),
                what,
            )
            self.assertSame(
                Visit.objects.exclude(person__email=email),
                Visit.objects.exclude(person__plain_email=n_email),
                what,
            )
            self.assertSame(
                Person.objects.filter(visits__person__email=email).distinct(),
                Person.objects.filter(visits__person__plain_email=n_email).distinct(),
                what,
            )
            self.assertEqual(
                sorted(
                    Person.objects.values("pk", "name")
                    .filter(email=email)
                    .values_list("pk", flat=True)
                ),
                sorted(Person.objects.filter(plain_email=n_email).values_list("pk", flat=True)),
                what,
            )
            self.assertEqual(
                sorted(
                    (normal("email", e) or "")
                    for e in Person.objects.filter(email=email).values_list("email", flat=True)
                ),
                sorted(
                    (e or "")
                    for e in Person.objects.filter(plain_email=n_email).values_list(
                        "plain_email", flat=True
                    )
                ),
                what,
            )
            self.assertSame(
                Person.objects.filter(pk__in=Person.objects.filter(ssn=ssn)),
                Person.objects.filter(pk__in=Person.objects.filter(plain_ssn=n_ssn)),
                what,
            )
            self.assertSame(
                Visit.objects.filter(person__in=Person.objects.filter(email=email).values("pk")),
                Visit.objects.filter(
                    person__in=Person.objects.filter(plain_email=n_email).values("pk")
                ),
                what,
            )
            # Across the reverse one-to-one of a child model, compared with its badges read.
            badge = self.rng.choice([*self.values.numbers[:5], "7", "-7"])
            self.assertEqual(
                sorted(Person.objects.filter(employee__badge=badge).values_list("pk", flat=True)),
                sorted(pk for pk, held in self.badges.items() if held == int(badge)),
                repr(badge),
            )
            self.assertSame(
                Employee.objects.filter(ssn=ssn),
                Employee.objects.filter(plain_ssn=n_ssn),
                what,
            )
