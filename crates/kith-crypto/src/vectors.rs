//! Known-answer vectors, committed in `tests/vectors/*.json`.
//!
//! The tests here recompute every output from the committed inputs and require the exact
//! committed bytes, so any change to an encoding or derivation shows up as a failure.
//! After a deliberate format change (which needs a new version number), regenerate with
//! `KITH_REGENERATE_VECTORS=1 cargo test -p kith-crypto vectors::regenerate` and review
//! the diff. Inputs come from a seeded RNG, so regeneration is reproducible.

use std::path::PathBuf;

use data_encoding::HEXLOWER;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::*;

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

fn unhex(text: &str) -> Vec<u8> {
    HEXLOWER.decode(text.as_bytes()).expect("vector hex")
}

fn unhex_array<const N: usize>(text: &str) -> [u8; N] {
    unhex(text).try_into().expect("vector field length")
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn read<T: DeserializeOwned>(name: &str) -> Vec<T> {
    let text = std::fs::read_to_string(path(name)).expect("committed vector file");
    serde_json::from_str(&text).expect("vector json")
}

fn write<T: Serialize>(name: &str, vectors: &[T]) {
    let mut text = serde_json::to_string_pretty(vectors).expect("vector json");
    text.push('\n');
    std::fs::create_dir_all(path("")).expect("vector dir");
    std::fs::write(path(name), text).expect("write vector file");
}

fn random<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// An identity, a sealed envelope, and everything derived from them.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct EnvelopeVector {
    // Inputs.
    identity_secret_hex: String,
    epoch_key_hex: String,
    circle: String,
    seq: u64,
    prev_hex: String,
    epoch: u32,
    nonce_hex: String,
    plaintext_hex: String,
    // Outputs.
    member_id: String,
    peer_id: String,
    encoding_hex: String,
    hash_hex: String,
}

impl EnvelopeVector {
    #[allow(clippy::too_many_arguments)]
    fn compute(
        secret: [u8; 32],
        epoch_key: [u8; 32],
        circle: CircleId,
        seq: u64,
        prev: Hash,
        epoch: u32,
        nonce: [u8; 24],
        plaintext: &[u8],
    ) -> Self {
        let identity = DeviceIdentity::from_secret(&Secret::from_bytes(secret));
        let key = EpochKey(Secret::from_bytes(epoch_key));
        let header = EnvelopeHeader {
            circle,
            author: identity.member_id(),
            seq,
            prev,
            epoch,
            nonce,
        };
        let envelope = Envelope::seal_header(&identity, &key, header, plaintext).unwrap();
        // Whatever is committed must also decode, verify and open.
        let encoding = envelope.encode();
        let decoded = Envelope::decode(&encoding).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(&decoded.open(&key).unwrap()[..], plaintext);
        Self {
            identity_secret_hex: hex(&secret),
            epoch_key_hex: hex(&epoch_key),
            circle: circle.to_string(),
            seq,
            prev_hex: hex(&prev),
            epoch,
            nonce_hex: hex(&nonce),
            plaintext_hex: hex(plaintext),
            member_id: identity.member_id().to_string(),
            peer_id: identity.peer_id().to_string(),
            encoding_hex: hex(&encoding),
            hash_hex: hex(&envelope.hash()),
        }
    }

    fn recompute(&self) -> Self {
        Self::compute(
            unhex_array(&self.identity_secret_hex),
            unhex_array(&self.epoch_key_hex),
            self.circle.parse().unwrap(),
            self.seq,
            unhex_array(&self.prev_hex),
            self.epoch,
            unhex_array(&self.nonce_hex),
            &unhex(&self.plaintext_hex),
        )
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct KdfVector {
    passphrase: String,
    salt_hex: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    key_hex: String,
}

impl KdfVector {
    fn compute(passphrase: &str, params: &KdfParams) -> Self {
        let key = derive_key_from_passphrase(passphrase.as_bytes(), params).unwrap();
        Self {
            passphrase: passphrase.to_owned(),
            salt_hex: hex(&params.salt),
            m_cost_kib: params.m_cost_kib,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
            key_hex: hex(key.expose_secret()),
        }
    }

    fn recompute(&self) -> Self {
        let params = KdfParams {
            m_cost_kib: self.m_cost_kib,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
            salt: unhex_array(&self.salt_hex),
        };
        Self::compute(&self.passphrase, &params)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HkdfVector {
    key_hex: String,
    purpose: String,
    salt_hex: String,
    subkey_hex: String,
}

impl HkdfVector {
    fn compute(key: [u8; 32], purpose: &str, salt: &[u8]) -> Self {
        let subkey = derive_subkey(&Secret::from_bytes(key), purpose, salt);
        Self {
            key_hex: hex(&key),
            purpose: purpose.to_owned(),
            salt_hex: hex(salt),
            subkey_hex: hex(subkey.expose_secret()),
        }
    }

    fn recompute(&self) -> Self {
        Self::compute(
            unhex_array(&self.key_hex),
            &self.purpose,
            &unhex(&self.salt_hex),
        )
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct IdVector {
    member_key_hex: String,
    member_id: String,
    fingerprint: String,
    circle_hex: String,
    circle: String,
}

impl IdVector {
    fn compute(member: [u8; 32], circle: [u8; 16]) -> Self {
        Self {
            member_key_hex: hex(&member),
            member_id: MemberId(member).to_string(),
            fingerprint: MemberId(member).fingerprint(),
            circle_hex: hex(&circle),
            circle: CircleId(circle).to_string(),
        }
    }

    fn recompute(&self) -> Self {
        let vector = Self::compute(
            unhex_array(&self.member_key_hex),
            unhex_array(&self.circle_hex),
        );
        assert_eq!(
            self.member_id.parse(),
            Ok(MemberId(unhex_array(&self.member_key_hex)))
        );
        assert_eq!(
            self.circle.parse(),
            Ok(CircleId(unhex_array(&self.circle_hex)))
        );
        vector
    }
}

/// `seal_random_nonce` output (nonce || ciphertext || tag) for a given nonce.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct AeadVector {
    key_hex: String,
    nonce_hex: String,
    aad_hex: String,
    plaintext_hex: String,
    sealed_hex: String,
}

impl AeadVector {
    fn compute(key: [u8; 32], nonce: [u8; 24], aad: &[u8], plaintext: &[u8]) -> Self {
        let key = Secret::from_bytes(key);
        let sealed = seal_random_nonce(&key, aad, plaintext, &mut FixedRng(nonce.to_vec()));
        assert_eq!(
            sealed.get(24..),
            Some(&seal_with_nonce(&key, &nonce, aad, plaintext)[..])
        );
        assert_eq!(
            &open_random_nonce(&key, aad, &sealed).unwrap()[..],
            plaintext
        );
        Self {
            key_hex: hex(key.expose_secret()),
            nonce_hex: hex(&nonce),
            aad_hex: hex(aad),
            plaintext_hex: hex(plaintext),
            sealed_hex: hex(&sealed),
        }
    }

    fn recompute(&self) -> Self {
        Self::compute(
            unhex_array(&self.key_hex),
            unhex_array(&self.nonce_hex),
            &unhex(&self.aad_hex),
            &unhex(&self.plaintext_hex),
        )
    }
}

/// An epoch key wrapped from one member to another, with the ephemeral secret the RNG gave.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct WrapVector {
    // Inputs.
    sender_secret_hex: String,
    recipient_secret_hex: String,
    circle: String,
    epoch: u32,
    epoch_key_hex: String,
    ephemeral_secret_hex: String,
    // Outputs.
    sender: String,
    recipient: String,
    wrapped_hex: String,
}

impl WrapVector {
    fn compute(
        sender: [u8; 32],
        recipient: [u8; 32],
        circle: CircleId,
        epoch: u32,
        epoch_key: [u8; 32],
        ephemeral: [u8; 32],
    ) -> Self {
        let sender_identity = DeviceIdentity::from_secret(&Secret::from_bytes(sender));
        let recipient_identity = DeviceIdentity::from_secret(&Secret::from_bytes(recipient));
        let key = EpochKey(Secret::from_bytes(epoch_key));
        let wrapped = wrap_epoch_key(
            &sender_identity,
            &recipient_identity.member_id(),
            &circle,
            epoch,
            &key,
            &mut FixedRng(ephemeral.to_vec()),
        )
        .unwrap();
        // Whatever is committed must also decode and open.
        let encoded = wrapped.encode();
        let decoded = WrappedKey::decode(&encoded).unwrap();
        assert_eq!(
            unwrap_epoch_key(
                &recipient_identity,
                &sender_identity.member_id(),
                &circle,
                epoch,
                &decoded
            ),
            Ok(key)
        );
        Self {
            sender_secret_hex: hex(&sender),
            recipient_secret_hex: hex(&recipient),
            circle: circle.to_string(),
            epoch,
            epoch_key_hex: hex(&epoch_key),
            ephemeral_secret_hex: hex(&ephemeral),
            sender: sender_identity.member_id().to_string(),
            recipient: recipient_identity.member_id().to_string(),
            wrapped_hex: hex(&encoded),
        }
    }

    fn recompute(&self) -> Self {
        Self::compute(
            unhex_array(&self.sender_secret_hex),
            unhex_array(&self.recipient_secret_hex),
            self.circle.parse().unwrap(),
            self.epoch,
            unhex_array(&self.epoch_key_hex),
            unhex_array(&self.ephemeral_secret_hex),
        )
    }
}

/// An invite code, what members store for it, and a join proof for one connection.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct InviteVector {
    // Inputs.
    circle: String,
    inviter: String,
    addresses: Vec<String>,
    secret_hex: String,
    expires_at: u64,
    joiner_secret_hex: String,
    admitter_secret_hex: String,
    // Outputs.
    code: String,
    invite_id_hex: String,
    verifier_key_hex: String,
    joiner_peer_id: String,
    admitter_peer_id: String,
    join_proof_hex: String,
}

impl InviteVector {
    #[allow(clippy::too_many_arguments)]
    fn compute(
        circle: CircleId,
        inviter: MemberId,
        addresses: Vec<String>,
        secret: [u8; 16],
        expires_at: u64,
        joiner: [u8; 32],
        admitter: [u8; 32],
    ) -> Self {
        let invite = InviteCode::new(
            circle,
            inviter,
            addresses.clone(),
            Secret::from_bytes(secret),
            expires_at,
        )
        .unwrap();
        let code = invite.encode();
        assert_eq!(InviteCode::parse(&code), Ok(invite.clone()));
        let joiner = DeviceIdentity::from_secret(&Secret::from_bytes(joiner));
        let admitter = DeviceIdentity::from_secret(&Secret::from_bytes(admitter));
        let proof = JoinProof::create(
            invite.secret(),
            &circle,
            &joiner.peer_id(),
            &admitter.peer_id(),
        );
        assert!(proof.verify(
            &invite.verifier_key(),
            &circle,
            &joiner.peer_id(),
            &admitter.peer_id()
        ));
        Self {
            circle: circle.to_string(),
            inviter: inviter.to_string(),
            addresses,
            secret_hex: hex(&secret),
            expires_at,
            joiner_secret_hex: hex(joiner.secret().expose_secret()),
            admitter_secret_hex: hex(admitter.secret().expose_secret()),
            code,
            invite_id_hex: hex(&invite.id()),
            verifier_key_hex: hex(invite.verifier_key().expose_secret()),
            joiner_peer_id: joiner.peer_id().to_string(),
            admitter_peer_id: admitter.peer_id().to_string(),
            join_proof_hex: hex(&proof.0),
        }
    }

    fn recompute(&self) -> Self {
        let vector = Self::compute(
            self.circle.parse().unwrap(),
            self.inviter.parse().unwrap(),
            self.addresses.clone(),
            unhex_array(&self.secret_hex),
            self.expires_at,
            unhex_array(&self.joiner_secret_hex),
            unhex_array(&self.admitter_secret_hex),
        );
        // The committed code, typed in upper case and broken over lines, reads the same.
        let typed = self.code.to_uppercase().replace("KITH1", "KITH1\n");
        assert_eq!(
            InviteCode::parse(&typed).map(|invite| invite.encode()),
            Ok(self.code.clone())
        );
        vector
    }
}

/// Hands out fixed bytes, to feed a known nonce through the public `seal_random_nonce`.
struct FixedRng(Vec<u8>);

impl rand::TryRng for FixedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unimplemented!("only fill_bytes is used")
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unimplemented!("only fill_bytes is used")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let taken: Vec<u8> = self.0.drain(..dst.len()).collect();
        dst.copy_from_slice(&taken);
        Ok(())
    }
}

impl rand::TryCryptoRng for FixedRng {}

fn generate_envelopes() -> Vec<EnvelopeVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0001);
    let secret = random(&mut rng);
    let key = random(&mut rng);
    let circle = CircleId(random(&mut rng));
    let first = EnvelopeVector::compute(
        secret,
        key,
        circle,
        1,
        [0; 32],
        0,
        random(&mut rng),
        b"I'm okay",
    );
    let second = EnvelopeVector::compute(
        secret,
        key,
        circle,
        2,
        unhex_array(&first.hash_hex),
        0,
        random(&mut rng),
        b"Could someone bring dinner on Thursday?",
    );
    // Multi-byte varints everywhere and a ciphertext longer than 127 bytes.
    let mut long = vec![0u8; 300];
    rng.fill_bytes(&mut long);
    let third = EnvelopeVector::compute(
        secret,
        random(&mut rng),
        circle,
        300,
        random(&mut rng),
        70_000,
        random(&mut rng),
        &long,
    );
    vec![first, second, third]
}

fn generate_kdf() -> Vec<KdfVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0002);
    let small = |salt, m_cost_kib, t_cost, p_cost| KdfParams {
        m_cost_kib,
        t_cost,
        p_cost,
        salt,
    };
    vec![
        KdfVector::compute(
            "correct horse battery staple",
            &small(random(&mut rng), 256, 1, 1),
        ),
        KdfVector::compute("", &small(random(&mut rng), 256, 1, 1)),
        KdfVector::compute("pässwörd", &small(random(&mut rng), 512, 2, 2)),
    ]
}

fn generate_hkdf() -> Vec<HkdfVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0003);
    let key = random(&mut rng);
    let salt: [u8; 16] = random(&mut rng);
    vec![
        HkdfVector::compute(key, "store", b""),
        HkdfVector::compute(key, "store", &salt),
        HkdfVector::compute(random(&mut rng), "invite", b"kith"),
    ]
}

fn generate_ids() -> Vec<IdVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0004);
    let mut vectors = vec![IdVector::compute([0; 32], [0; 16])];
    for _ in 0..3 {
        let member = DeviceIdentity::generate(&mut rng).member_id().0;
        vectors.push(IdVector::compute(member, random(&mut rng)));
    }
    vectors
}

fn generate_aead() -> Vec<AeadVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0005);
    let key = random(&mut rng);
    vec![
        AeadVector::compute(key, random(&mut rng), b"", b""),
        AeadVector::compute(key, random(&mut rng), b"row 1", b"identity secret"),
    ]
}

fn generate_wraps() -> Vec<WrapVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0006);
    let alice = random(&mut rng);
    let bob = random(&mut rng);
    let circle = CircleId(random(&mut rng));
    let key = random(&mut rng);
    vec![
        WrapVector::compute(alice, bob, circle, 0, key, random(&mut rng)),
        WrapVector::compute(alice, alice, circle, 0, key, random(&mut rng)),
        WrapVector::compute(
            bob,
            alice,
            circle,
            70_000,
            random(&mut rng),
            random(&mut rng),
        ),
    ]
}

fn generate_invites() -> Vec<InviteVector> {
    let mut rng = StdRng::seed_from_u64(0x6b69_7468_0007);
    let inviter = DeviceIdentity::generate(&mut rng).member_id();
    let circle = CircleId(random(&mut rng));
    let lan = "/ip4/192.168.1.20/tcp/41000".to_owned();
    let public = "/ip6/2001:db8::7/tcp/41000".to_owned();
    vec![
        InviteVector::compute(
            circle,
            inviter,
            vec![],
            random(&mut rng),
            1_800_000_000,
            random(&mut rng),
            random(&mut rng),
        ),
        InviteVector::compute(
            circle,
            inviter,
            vec![lan.clone()],
            random(&mut rng),
            1_800_000_000,
            random(&mut rng),
            random(&mut rng),
        ),
        InviteVector::compute(
            CircleId(random(&mut rng)),
            inviter,
            vec![lan, public],
            random(&mut rng),
            u64::MAX,
            random(&mut rng),
            random(&mut rng),
        ),
    ]
}

#[test]
fn regenerate() {
    if std::env::var_os("KITH_REGENERATE_VECTORS").is_none() {
        return;
    }
    write("envelope.json", &generate_envelopes());
    write("kdf.json", &generate_kdf());
    write("hkdf.json", &generate_hkdf());
    write("ids.json", &generate_ids());
    write("aead.json", &generate_aead());
    write("wrap.json", &generate_wraps());
    write("invite.json", &generate_invites());
}

#[test]
fn envelope_vectors() {
    let vectors: Vec<EnvelopeVector> = read("envelope.json");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
    // The committed chain is a chain.
    let envelopes: Vec<Envelope> = vectors
        .iter()
        .map(|v| Envelope::decode(&unhex(&v.encoding_hex)).unwrap())
        .collect();
    assert!(envelopes[0].follows(None));
    assert!(envelopes[1].follows(Some(&envelopes[0])));
}

#[test]
fn kdf_vectors() {
    let vectors: Vec<KdfVector> = read("kdf.json");
    assert!(!vectors.is_empty());
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}

#[test]
fn hkdf_vectors() {
    let vectors: Vec<HkdfVector> = read("hkdf.json");
    assert!(!vectors.is_empty());
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}

#[test]
fn id_and_fingerprint_vectors() {
    let vectors: Vec<IdVector> = read("ids.json");
    assert!(!vectors.is_empty());
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}

#[test]
fn aead_vectors() {
    let vectors: Vec<AeadVector> = read("aead.json");
    assert!(!vectors.is_empty());
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}

#[test]
fn wrap_vectors() {
    let vectors: Vec<WrapVector> = read("wrap.json");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}

#[test]
fn invite_vectors() {
    let vectors: Vec<InviteVector> = read("invite.json");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(&vector.recompute(), vector);
    }
}
